"""Crash safety of release builds: a real ``coop serve`` is frozen (SIGSTOP) the moment the database says a
build is under way, then killed (SIGKILL) and restarted. The half-built release must be ``failed`` on
restart, serve no file, and its period must build again into a release whose files match its signed
manifest; the ledger verifies after every restart. The pings lie days back (their members' consent is
dated before them) and ``coop seal`` seals those days before any release is asked for; the families
have a huge budget (exact counts), so four members publish.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.support.figures import count
from tests.support.licensing import request_body
from tests.support.server import Server, consenting_members, ledger_verifies, scratch_database
from tests.support.world import SEED_PING_PLACE

CRASHES = 3
SECTION = "crash safety"
BATCH = 500


BUILD_MEMBERS = 4
BUILD_BATCHES_PER_MEMBER = 12


def _release_status(database_url: str, release_id: str) -> str:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            status: str = connection.execute(sa.text("SELECT status FROM release WHERE id = :id"),
                                             {"id": release_id}).scalar_one()
    finally:
        engine.dispose()
    return status


def _kill_while_building(server: Server, url: str, release_id: str) -> str:
    """Freeze the server (SIGSTOP) until the database says the build is under way, then SIGKILL it.
    Returns the status seen at the kill (``building``, or ``queued``/``ready`` if it never was seen)."""
    for _attempt in range(2000):
        server.pause()
        status = _release_status(url, release_id)
        if status != "queued":
            server.kill()
            return status
        server.resume()
        time.sleep(0.002)
    server.kill()
    return "queued"


def _backdate_consent(database_url: str, at: datetime) -> None:
    """Date every consent event at ``at`` (the API stamps consent now; these members consented earlier)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE consent_event SET at = :at"), {"at": at})
    finally:
        engine.dispose()


def _seed_release_data(server: Server, members: list[dict[str, Any]], day: date) -> None:
    """Pings of every member at the same spots during ``day``'s first hours, so that day holds rows with
    all the members."""
    lat, lng = SEED_PING_PLACE
    for m, member in enumerate(members):
        with server.client(member["token"]) as http:
            for b in range(BUILD_BATCHES_PER_MEMBER):
                start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=b)
                pings = [{"id": f"m{m}-b{b}-{n}", "ts": (start + timedelta(milliseconds=n)).isoformat(),
                          "lat": lat + (n % 40) * 4e-4, "lng": lng + (n // 40) * 4e-4, "accuracy_m": 8.0}
                         for n in range(BATCH)]
                answer = http.post("/v1/pings", json={"pings": pings})
                assert answer.status_code == 200 and answer.json()["accepted"] == BATCH, answer.text


@pytest.mark.slow
def test_kill_during_a_release_build_marks_it_failed_and_the_period_rebuilds(database_url: str,
                                                                            tmp_path: Path) -> None:
    with scratch_database(database_url, tmp_path) as url:
        server = Server(database_url=url, data_dir=tmp_path,
                        extra_env={"COOP_FAMILY_EPSILON_PER_DAY": "1e9", "COOP_PRIVACY_BUDGET_PER_DAY": "1e12"})
        admin = server.create_account("admin", "Admin")
        server.start()
        try:
            voters = server.create_accounts(admin["token"], "board", ["B0", "B1"])
            [treasurer] = server.create_accounts(admin["token"], "treasurer", ["T"])
            [modeller] = server.create_accounts(admin["token"], "modeller", ["M"], organisation="Lab")
            members = consenting_members(server, admin["token"], BUILD_MEMBERS)
            first_day = datetime.now(UTC).date() - timedelta(days=3 + CRASHES)
            _backdate_consent(url, datetime.combine(first_day, datetime.min.time(), tzinfo=UTC) - timedelta(days=1))
            _seed_release_data(server, members, first_day)
            licence_id = _paid_licence(server, modeller, voters, treasurer, first_day)
            sealed = server.cli("seal")
            assert sealed.returncode == 0, sealed.stderr

            statuses: list[str] = []
            for day in range(CRASHES):
                period = {"start": (first_day + timedelta(days=day)).isoformat(),
                          "end": (first_day + timedelta(days=day + 1)).isoformat()}
                with server.client(modeller["token"]) as http:
                    queued = http.post(f"/v1/licences/{licence_id}/releases", json=period)
                assert queued.status_code == 202, queued.text
                release_id = queued.json()["release_id"]
                statuses.append(_kill_while_building(server, url, release_id))
                count(SECTION, f"kill -9 with the release {statuses[-1]}")
                server.start()
                _assert_release_recovers(server, modeller["token"], licence_id, release_id, period,
                                         killed_while=statuses[-1], has_pings=day == 0)
                ledger_verifies(server)
                count(SECTION, "restarts verified")
            assert "building" in statuses, statuses
        finally:
            server.kill()


def _paid_licence(server: Server, modeller: dict[str, Any], voters: list[dict[str, Any]],
                  treasurer: dict[str, Any], first_day: date) -> str:
    dataset = {"start": first_day.isoformat(), "end": (first_day + timedelta(days=7)).isoformat(),
               "region": None, "k": 2}
    with server.client(modeller["token"]) as http:
        request = http.post("/v1/licence-requests", json=request_body(dataset=dataset, fee_pence=100))
    assert request.status_code == 201, request.text
    for voter in voters:
        with server.client(voter["token"]) as http:
            assert http.post(f"/v1/licence-requests/{request.json()['request_id']}/votes",
                             json={"decision": "approve"}).status_code == 201
    with server.client(modeller["token"]) as http:
        licence_id: str = http.get(f"/v1/licence-requests/{request.json()['request_id']}").json()["licence_id"]
    with server.client(treasurer["token"]) as http:
        assert http.post(f"/v1/licences/{licence_id}/payments",
                         json={"amount_pence": 100, "reference": "BACS"}).status_code == 201
    return licence_id


def _wait_until_settled(http: httpx.Client, release_id: str) -> dict[str, Any]:
    for _poll in range(600):
        manifest: dict[str, Any] = http.get(f"/v1/releases/{release_id}").json()
        if manifest["status"] in ("ready", "failed"):
            return manifest
        time.sleep(0.1)
    raise AssertionError(f"release {release_id} did not settle in 60 s")


def _assert_release_recovers(server: Server, token: str, licence_id: str, release_id: str,
                             period: dict[str, str], *, killed_while: str, has_pings: bool) -> None:
    """A build killed half-way is failed on restart, serves no file, and its period builds again."""
    with server.client(token) as http:
        manifest = _wait_until_settled(http, release_id)
        if killed_while == "building":
            assert manifest["status"] == "failed", manifest
            assert http.get(f"/v1/releases/{release_id}/files/cells.csv").status_code == 409
            rebuilt = http.post(f"/v1/licences/{licence_id}/releases", json=period)
            assert rebuilt.status_code == 202, rebuilt.text
            manifest = _wait_until_settled(http, rebuilt.json()["release_id"])
            count(SECTION, "half-built releases failed and rebuilt")
        assert manifest["status"] == "ready", manifest
        assert manifest["jws"] and (manifest["stats"]["rows"] > 0) == has_pings, manifest["stats"]
        for file in manifest["files"]:
            path = "preview.svg" if file["name"] == "preview.svg" else f"files/{file['name']}"
            body = http.get(f"/v1/releases/{manifest['release_id']}/{path}")
            assert body.status_code == 200 and len(body.content) == file["bytes"]
            assert hashlib.sha256(body.content).hexdigest() == file["sha256"]
