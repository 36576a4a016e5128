"""Regression tests for what the reliability work found (each names the fix it guards)."""

from __future__ import annotations

import threading
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from coop.kit.timeutil import utcnow
from tests.support.factories import make_account
from tests.support.licensing import submit
from tests.support.world import PURPOSE, ping_batch


def test_board_audit_trail_shows_no_member_privacy_actions(client: TestClient, app: FastAPI) -> None:
    """coop/kit/audit.py + coop/licensing/audit_trail.py: a member's zones and pauses are not the board's business."""
    member = make_account(app, Role.MEMBER)
    board = make_account(app, Role.BOARD)
    zone = client.post("/v1/me/privacy-zones", json={"lat": 53.4, "lng": -2.9, "radius_m": 100},
                       headers=member.headers).json()
    assert client.put("/v1/me/collection", json={"paused": True}, headers=member.headers).status_code == 200
    assert client.delete(f"/v1/me/privacy-zones/{zone['zone_id']}", headers=member.headers).status_code == 204
    submit(client, make_account(app, Role.MODELLER))

    trail = client.get("/v1/audit", headers=board.headers)
    assert trail.status_code == 200
    actions = [event["action"] for event in trail.json()["items"]]
    assert actions == ["licence_request.submitted"]
    assert zone["zone_id"] not in trail.text and member.account_id not in trail.text


def test_body_that_is_not_utf8_is_422_not_an_undocumented_400(client: TestClient, app: FastAPI) -> None:
    """api/problems.py: FastAPI answers an undecodable body with 400, which no operation documents."""
    member = make_account(app, Role.MEMBER)
    response = client.post("/v1/me/tokens", content=b'\xff\xfe{"label": "x"}',
                           headers={"Content-Type": "application/json", **member.headers})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "urn:coop:problem:invalid-input"


def test_ingest_from_several_event_loops_at_once_never_hangs(app: FastAPI) -> None:
    """api/routing.py: the SQLite writer lock was one asyncio.Lock shared by every event loop; a request
    waiting on it from a second loop was never woken (a hang, found by the concurrency tests)."""
    member = make_account(app, Role.MEMBER)
    with TestClient(app) as setup:
        policy = next(p["policy_version"] for p in setup.get("/v1/purposes").json()["items"]
                      if p["code"] == PURPOSE)
        setup.put(f"/v1/me/consents/{PURPOSE}", json={"given": True, "policy_version": policy},
                  headers=member.headers)
    statuses: list[int] = []
    start = threading.Barrier(4)

    def phone(n: int) -> None:
        own = TestClient(app)
        start.wait(timeout=30)
        for batch in range(5):
            pings = ping_batch(f"t{n}-{batch}", [utcnow() - timedelta(minutes=m) for m in range(1, 30)])
            statuses.append(own.post("/v1/pings", json={"pings": pings}, headers=member.headers).status_code)

    threads = [threading.Thread(target=phone, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "an ingest request never returned"
    assert statuses == [200] * 20
