"""Crash safety: a real ``coop serve`` is killed with SIGKILL in the middle of work, then restarted.

The database is a SQLite file, or on a PostgreSQL run a database created for the test and dropped after
it. After every crash: the server starts again on the same database, the ledger verifies (``coop ledger
verify``), every retried Idempotency-Key yields exactly one entry (answered before the crash or not),
and a request was decided at most once with at most one licence. Client loops are bounded in count and
time and stop by themselves when the server dies.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.figures import count
from tests.licensing_factories import request_body
from tests.server import Server, scratch_database
from tests.world import PURPOSE, SEED_PING_PLACE

CRASHES = 3
CLIENTS = 4
MAX_REQUESTS_PER_CLIENT = 400
SECTION = "crash safety"


@dataclass
class Sent:
    """What one client sent before the crash: every key, and the answers it got."""

    keys: list[str] = field(default_factory=list)
    answered: dict[str, Any] = field(default_factory=dict)


def _pay_until_the_server_dies(server: Server, token: str, licence_id: str, prefix: str, sent: Sent,
                               stop: threading.Event) -> None:
    with server.client(token) as http:
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set():
                return
            key = f"{prefix}-{n}"
            sent.keys.append(key)
            try:
                response = http.post(f"/v1/licences/{licence_id}/payments", headers={"Idempotency-Key": key},
                                     json={"amount_pence": 1, "reference": key})
            except httpx.TransportError:
                return
            assert response.status_code == 201, response.text
            sent.answered[key] = response.json()


def _vote_until_the_server_dies(server: Server, voters: list[dict[str, Any]], request_ids: list[str],
                                stop: threading.Event) -> None:
    clients = [server.client(voter["token"]) for voter in voters]
    try:
        for request_id in request_ids:
            for http in clients:
                if stop.is_set():
                    return
                try:
                    response = http.post(f"/v1/licence-requests/{request_id}/votes", json={"decision": "approve"})
                except httpx.TransportError:
                    return
                assert response.status_code in (201, 409), response.text
    finally:
        for http in clients:
            http.close()


def _ledger_verifies(server: Server) -> dict[str, Any]:
    done = server.cli("ledger", "verify", "--json")
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], (done.stdout, done.stderr)
    return report


def _approved_licence(server: Server, modeller: dict[str, Any], voters: list[dict[str, Any]]) -> str:
    with server.client(modeller["token"]) as http:
        request_id = http.post("/v1/licence-requests", json=request_body(fee_pence=10**9)).json()["request_id"]
    for voter in voters:
        with server.client(voter["token"]) as http:
            assert http.post(f"/v1/licence-requests/{request_id}/votes",
                             json={"decision": "approve"}).status_code == 201
    with server.client(modeller["token"]) as http:
        licence_id: str = http.get(f"/v1/licence-requests/{request_id}").json()["licence_id"]
    return licence_id


@pytest.mark.slow
def test_kill_during_payments_and_votes_loses_and_doubles_nothing(database_url: str, tmp_path: Path) -> None:
    rng = random.Random(20261121)
    with scratch_database(database_url, tmp_path) as url:
        server = Server(database_url=url, data_dir=tmp_path)
        admin = server.create_account("admin", "Admin")
        server.start()
        try:
            treasurers = server.create_accounts(admin["token"], "treasurer", [f"T{n}" for n in range(CLIENTS)])
            voters = server.create_accounts(admin["token"], "board", ["B0", "B1", "B2"])
            [modeller] = server.create_accounts(admin["token"], "modeller", ["M"], organisation="Lab")
            for crash in range(CRASHES):
                licence_id = _approved_licence(server, modeller, voters[:2])
                with server.client(modeller["token"]) as http:
                    request_ids = [http.post("/v1/licence-requests", json=request_body()).json()["request_id"]
                                   for _ in range(20)]
                sent = [Sent() for _ in treasurers]
                stop = threading.Event()
                threads = [threading.Thread(target=_pay_until_the_server_dies,
                                            args=(server, t["token"], licence_id, f"c{crash}-t{n}", sent[n], stop))
                           for n, t in enumerate(treasurers)]
                threads.append(threading.Thread(target=_vote_until_the_server_dies,
                                                args=(server, voters, request_ids, stop)))
                for thread in threads:
                    thread.start()
                time.sleep(rng.uniform(0.3, 1.2))
                server.kill()
                stop.set()
                for thread in threads:
                    thread.join(timeout=60)
                count(SECTION, "kill -9 during payments and votes")
                count(SECTION, "requests answered before a crash", sum(len(s.answered) for s in sent))

                server.start()
                _ledger_verifies(server)
                _assert_each_key_paid_once(server, treasurers, sent, licence_id)
                _assert_each_request_decided_once(server, voters[0], request_ids)
                count(SECTION, "restarts verified")
        finally:
            server.kill()


def _assert_each_key_paid_once(server: Server, treasurers: list[dict[str, Any]], sent: list[Sent],
                               licence_id: str) -> None:
    """Retry every key that was sent: the answered ones replay their answer; each key is one entry."""
    keys: list[str] = []
    for treasurer, record in zip(treasurers, sent, strict=True):
        with server.client(treasurer["token"]) as http:
            for key in record.keys:
                retry = http.post(f"/v1/licences/{licence_id}/payments", headers={"Idempotency-Key": key},
                                  json={"amount_pence": 1, "reference": key})
                assert retry.status_code == 201, retry.text
                if key in record.answered:
                    assert retry.json() == record.answered[key]
                keys.append(key)
    with server.client(treasurers[0]["token"]) as http:
        entries = _all_entries(http)
    payments = Counter(e["memo"] for e in entries if e["kind"] == "licence-payment" and licence_id in e["memo"])
    assert payments == Counter(f"licence {licence_id} payment received: {key}" for key in keys)
    count(SECTION, "idempotency keys retried after restart", len(keys))


def _all_entries(http: httpx.Client) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = http.get("/v1/ledger/entries", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        entries.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return entries


def _assert_each_request_decided_once(server: Server, board: dict[str, Any], request_ids: list[str]) -> None:
    with server.client(board["token"]) as http:
        licences = _all_licences(http)
        invoices = Counter(e["memo"].split()[1] for e in _all_entries(http) if e["kind"] == "licence-invoice")
        for request_id in request_ids:
            request = http.get(f"/v1/licence-requests/{request_id}").json()
            approvals = sum(1 for vote in request["votes"] if vote["decision"] == "approve")
            assert approvals <= 2
            issued = [lic for lic in licences if lic["request_id"] == request_id]
            if request["status"] == "approved":
                assert approvals == 2 and len(issued) == 1 and request["licence_id"] == issued[0]["licence_id"]
                assert invoices[issued[0]["licence_id"]] == 1
            else:
                assert request["status"] == "submitted" and issued == []


def _all_licences(http: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = http.get("/v1/licences", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


BATCH = 500
INGEST_CLIENTS = 4
MAX_BATCHES_PER_CLIENT = 200


def _consenting_members(server: Server, admin_token: str, count_: int) -> list[dict[str, Any]]:
    members = server.create_accounts(admin_token, "member", [f"Resident {n}" for n in range(count_)])
    with server.client() as http:
        policy = next(p["policy_version"] for p in http.get("/v1/purposes").json()["items"]
                      if p["code"] == PURPOSE)
    for member in members:
        with server.client(member["token"]) as http:
            assert http.put(f"/v1/me/consents/{PURPOSE}",
                            json={"given": True, "policy_version": policy}).status_code == 200
    return members


def _batch(prefix: str, first_ts: datetime) -> dict[str, Any]:
    lat, lng = SEED_PING_PLACE
    pings = [{"id": f"{prefix}-{n}", "ts": (first_ts + timedelta(seconds=n)).isoformat(), "lat": lat + n * 1e-5,
              "lng": lng, "accuracy_m": 8.0} for n in range(BATCH)]
    return {"pings": pings}


def _ingest_until_the_server_dies(server: Server, token: str, prefix: str, sent: Sent,
                                  stop: threading.Event) -> None:
    first_ts = datetime.now(UTC) - timedelta(days=1)
    with server.client(token) as http:
        for n in range(MAX_BATCHES_PER_CLIENT):
            if stop.is_set():
                return
            key = f"{prefix}-b{n}"
            sent.keys.append(key)
            try:
                response = http.post("/v1/pings", json=_batch(key, first_ts + timedelta(minutes=n)))
            except httpx.TransportError:
                return
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == BATCH, response.text
            sent.answered[key] = response.json()


def _stored_per_batch(database_url: str) -> Counter[str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            client_ids = connection.execute(sa.text("SELECT client_id FROM ping")).scalars().all()
    finally:
        engine.dispose()
    return Counter(client_id.rsplit("-", 1)[0] for client_id in client_ids)


@pytest.mark.slow
def test_kill_during_ingest_keeps_every_batch_whole(database_url: str, tmp_path: Path) -> None:
    """Every batch is all-or-nothing: after a crash each batch has 0 or all of its pings stored, every
    answered batch is stored whole, and resending the others completes them without duplicates."""
    rng = random.Random(11)
    with scratch_database(database_url, tmp_path) as url:
        server = Server(database_url=url, data_dir=tmp_path)
        admin = server.create_account("admin", "Admin")
        server.start()
        try:
            members = _consenting_members(server, admin["token"], INGEST_CLIENTS)
            for crash in range(CRASHES):
                sent = [Sent() for _ in members]
                stop = threading.Event()
                threads = [threading.Thread(target=_ingest_until_the_server_dies,
                                            args=(server, member["token"], f"c{crash}-m{n}", sent[n], stop))
                           for n, member in enumerate(members)]
                for thread in threads:
                    thread.start()
                time.sleep(rng.uniform(0.5, 1.5))
                server.kill()
                stop.set()
                for thread in threads:
                    thread.join(timeout=60)
                count(SECTION, "kill -9 during ingest")

                stored = _stored_per_batch(url)
                batches = [key for record in sent for key in record.keys]
                assert all(stored[key] in (0, BATCH) for key in batches), {k: stored[k] for k in batches}
                assert all(stored[key] == BATCH for record in sent for key in record.answered)
                count(SECTION, "batches checked whole or absent", len(batches))
                count(SECTION, "batches stored whole though unanswered",
                      sum(1 for record in sent for key in record.keys
                          if key not in record.answered and stored[key] == BATCH))

                server.start()
                for member, record in zip(members, sent, strict=True):
                    _resend_unanswered(server, member["token"], record, stored)
                stored = _stored_per_batch(url)
                assert all(stored[key] == BATCH for key in batches)
                count(SECTION, "restarts verified")
        finally:
            server.kill()


def _resend_unanswered(server: Server, token: str, record: Sent, stored: Counter[str]) -> None:
    first_ts = datetime.now(UTC) - timedelta(days=1)
    with server.client(token) as http:
        for n, key in enumerate(record.keys):
            if key in record.answered:
                continue
            answer = http.post("/v1/pings", json=_batch(key, first_ts + timedelta(minutes=n))).json()
            assert answer["accepted"] + answer["duplicates"] == BATCH
            assert answer["duplicates"] == stored[key]


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


def _seed_release_data(server: Server, members: list[dict[str, Any]]) -> None:
    """Pings of every member at the same spots, stamped just after their consent (pings older than a
    member's consent never count), so today's first hours hold rows with all the members (k = 2)."""
    lat, lng = SEED_PING_PLACE
    for m, member in enumerate(members):
        with server.client(member["token"]) as http:
            for b in range(BUILD_BATCHES_PER_MEMBER):
                now = datetime.now(UTC)
                pings = [{"id": f"m{m}-b{b}-{n}", "ts": (now + timedelta(milliseconds=n)).isoformat(),
                          "lat": lat + (n % 40) * 4e-4, "lng": lng + (n // 40) * 4e-4, "accuracy_m": 8.0}
                         for n in range(BATCH)]
                answer = http.post("/v1/pings", json={"pings": pings})
                assert answer.status_code == 200 and answer.json()["accepted"] == BATCH, answer.text


@pytest.mark.slow
def test_kill_during_a_release_build_marks_it_failed_and_the_period_rebuilds(database_url: str,
                                                                            tmp_path: Path) -> None:
    with scratch_database(database_url, tmp_path) as url:
        server = Server(database_url=url, data_dir=tmp_path)
        admin = server.create_account("admin", "Admin")
        server.start()
        try:
            voters = server.create_accounts(admin["token"], "board", ["B0", "B1"])
            [treasurer] = server.create_accounts(admin["token"], "treasurer", ["T"])
            [modeller] = server.create_accounts(admin["token"], "modeller", ["M"], organisation="Lab")
            members = _consenting_members(server, admin["token"], BUILD_MEMBERS)
            first_day = datetime.now(UTC).date()
            _seed_release_data(server, members)
            licence_id = _paid_licence(server, modeller, voters, treasurer, first_day)

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
                _ledger_verifies(server)
                count(SECTION, "restarts verified")
            assert "building" in statuses, statuses
        finally:
            server.kill()


def _paid_licence(server: Server, modeller: dict[str, Any], voters: list[dict[str, Any]],
                  treasurer: dict[str, Any], first_day: Any) -> str:
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
            body = http.get(f"/v1/releases/{manifest['release_id']}/files/{file['name']}")
            assert body.status_code == 200 and len(body.content) == file["bytes"]
            assert hashlib.sha256(body.content).hexdigest() == file["sha256"]


def test_server_helper_refuses_to_report_ready_for_a_server_that_exits(tmp_path: Path) -> None:
    server = Server(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", data_dir=tmp_path)
    with pytest.raises(AssertionError, match="exited"):
        server.start()
    assert server.process is not None and server.process.poll() is not None
    server.process = None
