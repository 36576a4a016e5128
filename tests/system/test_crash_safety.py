"""Crash safety: a real ``coop serve`` is killed with SIGKILL in the middle of work, then restarted.

The database is a SQLite file, or on a PostgreSQL run a database created for the test and dropped after
it. After every crash: the server starts again on the same database, the ledger verifies (``coop ledger
verify``), every retried Idempotency-Key yields exactly one entry (answered before the crash or not),
a request was decided at most once with at most one licence, and every batch of pings is stored whole
or not at all. Client loops are bounded in count and time and stop by themselves when the server dies.
Release builds: ``tests/system/test_crash_release.py``.
"""

from __future__ import annotations

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

from tests.support.figures import count
from tests.support.licensing import request_body
from tests.support.server import Server, consenting_members, ledger_verifies, scratch_database
from tests.support.world import SEED_PING_PLACE

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
                ledger_verifies(server)
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
            members = consenting_members(server, admin["token"], INGEST_CLIENTS)
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


def test_server_helper_refuses_to_report_ready_for_a_server_that_exits(tmp_path: Path) -> None:
    server = Server(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", data_dir=tmp_path)
    with pytest.raises(AssertionError, match="exited"):
        server.start()
    assert server.process is not None and server.process.poll() is not None
    server.process = None
