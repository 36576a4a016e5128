"""Concurrent votes: one licence per request, the losers get a clean 409, never a 5xx.

Each thread has its own TestClient (so its own requests, sessions and connections) against the same
app and database; a barrier releases them together. Runs on SQLite and on PostgreSQL (where the
request row lock, ``SELECT ... FOR UPDATE``, is what serialises the votes).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import func, select

from coop.accounts.roles import Role
from coop.kit.db import session_scope
from coop.licensing.models import Licence, Vote
from tests.support.factories import Caller, make_account
from tests.support.licensing import board_members, submit


def _race(app: FastAPI, calls: list[tuple[Caller, str, dict[str, Any]]]) -> list[Any]:
    """POST every (caller, path, body) at once, each from its own thread and client."""
    barrier = threading.Barrier(len(calls))

    def post(call: tuple[Caller, str, dict[str, Any]]) -> tuple[int, Any]:
        caller, path, body = call
        with TestClient(app) as own_client:
            barrier.wait()
            response = own_client.post(path, json=body, headers=caller.headers)
            return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(post, calls))


def _count(app: FastAPI, model: type[Licence] | type[Vote], request_id: str) -> int:
    with session_scope(app.state.engine) as session:
        return session.exec(select(func.count()).select_from(model)
                            .where(model.request_id == request_id)).one()


def test_parallel_approvals_issue_exactly_one_licence(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    voters = board_members(app, 8)
    quorum = app.state.settings.board_quorum
    for _round in range(3):
        request_id = submit(client, modeller)["request_id"]
        path = f"/v1/licence-requests/{request_id}/votes"
        results = _race(app, [(voter, path, {"decision": "approve"}) for voter in voters])

        statuses = Counter(status for status, _ in results)
        assert statuses == {201: quorum, 409: len(voters) - quorum}, results
        assert all(body["status"] == 409 and "closed" in body["detail"] for status, body in results if status == 409)
        deciding = [body for status, body in results if status == 201 and body["request_status"] == "approved"]
        assert len(deciding) == 1 and deciding[0]["licence_id"]
        assert _count(app, Licence, request_id) == 1
        assert _count(app, Vote, request_id) == quorum
        read = client.get(f"/v1/licence-requests/{request_id}", headers=modeller.headers).json()
        assert read["status"] == "approved" and read["licence_id"] == deciding[0]["licence_id"]


def test_one_member_voting_twice_at_once_counts_once(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    [voter] = board_members(app, 1)
    request_id = submit(client, modeller)["request_id"]
    path = f"/v1/licence-requests/{request_id}/votes"
    results = _race(app, [(voter, path, {"decision": "approve"})] * 4)
    assert sorted(status for status, _ in results) == [201, 409, 409, 409], results
    assert _count(app, Vote, request_id) == 1


def test_withdrawal_racing_the_deciding_vote_has_one_winner(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    first, second = board_members(app, 2)
    for _round in range(3):
        request_id = submit(client, modeller)["request_id"]
        assert client.post(f"/v1/licence-requests/{request_id}/votes", json={"decision": "approve"},
                           headers=first.headers).status_code == 201
        results = _race(app, [(second, f"/v1/licence-requests/{request_id}/votes", {"decision": "approve"}),
                              (modeller, f"/v1/licence-requests/{request_id}/withdraw", {})])
        assert sorted(status for status, _ in results) in ([200, 409], [201, 409]), results
        final = client.get(f"/v1/licence-requests/{request_id}", headers=modeller.headers).json()["status"]
        assert _count(app, Licence, request_id) == (1 if final == "approved" else 0)
        assert final == ("approved" if results[0][0] == 201 else "withdrawn")


def test_parallel_revocations_revoke_once(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    revokers = board_members(app, 4)
    request_id = submit(client, modeller)["request_id"]
    for voter in revokers[:2]:
        client.post(f"/v1/licence-requests/{request_id}/votes", json={"decision": "approve"}, headers=voter.headers)
    licence_id = client.get(f"/v1/licence-requests/{request_id}", headers=modeller.headers).json()["licence_id"]
    results = _race(app, [(revoker, f"/v1/licences/{licence_id}/revoke", {"reason": f"by {n}"})
                          for n, revoker in enumerate(revokers)])
    assert sorted(status for status, _ in results) == [200, 409, 409, 409], results
    trail = client.get("/v1/audit", params={"subject_id": licence_id}, headers=revokers[0].headers).json()["items"]
    assert [e["action"] for e in trail].count("licence.revoked") == 1
