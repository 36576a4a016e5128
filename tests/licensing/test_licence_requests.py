"""Licence requests and board votes: lifecycle, quorum, conflicts of interest, every 409, visibility."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
from coop.accounts.roles import Role
from coop.kit.audit import AuditEvent
from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.licensing.models import Licence, Vote
from tests.support.factories import make_account
from tests.support.licensing import board_members, submit, vote


def _licences_for(app: FastAPI, request_id: str) -> list[Licence]:
    with session_scope(app.state.engine) as session:
        return list(session.exec(select(Licence).where(Licence.request_id == request_id)))


def test_whole_lifecycle_from_request_to_revoked_licence(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER, name="Mo", organisation="Merseytravel")
    first, second, third = board_members(app, 3)

    submitted = submit(client, modeller)
    request_id = submitted["request_id"]
    assert submitted["status"] == "submitted"
    assert submitted["votes"] == [] and submitted["licence_id"] is None
    assert submitted["requester_id"] == modeller.account_id
    assert submitted["dataset"]["k"] == 2  # the k floor of the test settings, filled in

    cast = vote(client, first, request_id, "approve", comment="Clear public benefit")
    assert cast.status_code == 201, cast.text
    assert cast.json()["request_status"] == "submitted" and cast.json()["licence_id"] is None
    assert vote(client, second, request_id, "abstain").json()["request_status"] == "submitted"
    deciding = vote(client, third, request_id, "approve").json()
    assert deciding["request_status"] == "approved"
    licence_id = deciding["licence_id"]
    assert licence_id

    read = client.get(f"/v1/licence-requests/{request_id}", headers=modeller.headers).json()
    assert read["status"] == "approved" and read["licence_id"] == licence_id
    assert read["decided_at"] is not None
    assert [(v["voter_id"], v["decision"]) for v in read["votes"]] == [
        (first.account_id, "approve"), (second.account_id, "abstain"), (third.account_id, "approve")]
    assert read["votes"][0]["comment"] == "Clear public benefit"
    assert all(v["at"].endswith("Z") for v in read["votes"])

    licence = client.get(f"/v1/licences/{licence_id}", headers=modeller.headers).json()
    assert licence["status"] == "active" and licence["request_id"] == request_id
    assert licence["licensee_account_id"] == modeller.account_id
    assert licence["document"]["approved_by"] == sorted([first.account_id, third.account_id])

    revoked = client.post(f"/v1/licences/{licence_id}/revoke", json={"reason": "Breach of terms"},
                          headers=second.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert client.get(f"/v1/licences/{licence_id}", headers=modeller.headers).json()["status"] == "revoked"

    request_trail = client.get("/v1/audit", params={"subject_id": request_id}, headers=first.headers).json()
    assert [e["action"] for e in request_trail["items"]] == [
        "licence_request.submitted", "licence_request.vote_cast", "licence_request.vote_cast",
        "licence_request.vote_cast", "licence_request.approved"]
    assert request_trail["items"][0]["actor_id"] == modeller.account_id
    assert request_trail["items"][1]["detail"]["comment"] == "Clear public benefit"
    licence_trail = client.get("/v1/audit", params={"subject_id": licence_id}, headers=first.headers).json()
    assert [e["action"] for e in licence_trail["items"]] == ["licence.issued", "licence.revoked"]
    assert licence_trail["items"][1]["actor_id"] == second.account_id
    assert licence_trail["items"][1]["detail"] == {"reason": "Breach of terms"}


def test_rejection_at_the_quorum_issues_no_licence(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    first, second = board_members(app, 2)
    request_id = submit(client, modeller)["request_id"]
    assert vote(client, first, request_id, "reject").json()["request_status"] == "submitted"
    decided = vote(client, second, request_id, "reject", comment="k too low for rural cells").json()
    assert decided["request_status"] == "rejected" and decided["licence_id"] is None
    read = client.get(f"/v1/licence-requests/{request_id}", headers=modeller.headers).json()
    assert read["status"] == "rejected" and read["licence_id"] is None
    assert _licences_for(app, request_id) == []
    trail = client.get("/v1/audit", params={"subject_id": request_id}, headers=first.headers).json()
    assert trail["items"][-1]["action"] == "licence_request.rejected"


def test_a_second_vote_by_the_same_member_is_409(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    [member_of_board] = board_members(app, 1)
    request_id = submit(client, modeller)["request_id"]
    assert vote(client, member_of_board, request_id, "abstain").status_code == 201
    again = vote(client, member_of_board, request_id, "approve")
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    read = client.get(f"/v1/licence-requests/{request_id}", headers=modeller.headers).json()
    assert [v["decision"] for v in read["votes"]] == ["abstain"]


@pytest.mark.parametrize("closing", ["approve", "reject", "withdraw"])
def test_votes_on_a_closed_request_are_409(client: TestClient, app: FastAPI, closing: str) -> None:
    modeller = make_account(app, Role.MODELLER)
    first, second, late = board_members(app, 3)
    request_id = submit(client, modeller)["request_id"]
    if closing == "withdraw":
        assert client.post(f"/v1/licence-requests/{request_id}/withdraw",
                           headers=modeller.headers).status_code == 200
    else:
        for voter in (first, second):
            assert vote(client, voter, request_id, closing).status_code == 201
    for decision in ("approve", "reject", "abstain"):
        response = vote(client, late, request_id, decision)
        assert response.status_code == 409, (closing, decision)
    votes = client.get(f"/v1/licence-requests/{request_id}", headers=modeller.headers).json()["votes"]
    assert late.account_id not in {v["voter_id"] for v in votes}
    assert len(_licences_for(app, request_id)) == (1 if closing == "approve" else 0)


def test_withdrawal_only_by_its_modeller_and_only_while_submitted(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    other_modeller = make_account(app, Role.MODELLER)
    board_modeller = make_account(app, Role.MODELLER, Role.BOARD)
    request_id = submit(client, modeller)["request_id"]
    path = f"/v1/licence-requests/{request_id}/withdraw"

    assert client.post(path, headers=other_modeller.headers).status_code == 404
    assert client.post(path, headers=board_modeller.headers).status_code == 403
    withdrawn = client.post(path, headers=modeller.headers)
    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "withdrawn" and withdrawn.json()["decided_at"] is not None
    assert client.post(path, headers=modeller.headers).status_code == 409

    approved_id = submit(client, modeller)["request_id"]
    for voter in board_members(app, 2):
        vote(client, voter, approved_id, "approve")
    assert client.post(f"/v1/licence-requests/{approved_id}/withdraw", headers=modeller.headers).status_code == 409
    assert client.get(f"/v1/licence-requests/{approved_id}", headers=modeller.headers).json()["status"] == "approved"

    trail = client.get("/v1/audit", params={"subject_id": request_id}, headers=board_modeller.headers).json()
    assert [e["action"] for e in trail["items"]] == ["licence_request.submitted", "licence_request.withdrawn"]


def test_a_declared_conflict_counts_as_an_abstention(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    conflicted, second, third, fourth = board_members(app, 4)
    request_id = submit(client, modeller)["request_id"]

    conflicted_vote = vote(client, conflicted, request_id, "approve", conflict_of_interest=True).json()
    assert conflicted_vote["decision"] == "approve" and conflicted_vote["counted_as"] == "abstain"
    assert conflicted_vote["conflict_of_interest"] is True
    # One counted approval with a quorum of two: still open, although two members said "approve".
    assert vote(client, second, request_id, "approve").json()["request_status"] == "submitted"
    # A conflicted rejection does not count towards rejecting either.
    assert vote(client, third, request_id, "reject", conflict_of_interest=True).json()["request_status"] == "submitted"
    assert vote(client, fourth, request_id, "approve").json()["request_status"] == "approved"
    votes = client.get(f"/v1/licence-requests/{request_id}", headers=modeller.headers).json()["votes"]
    assert [v["counted_as"] for v in votes] == ["abstain", "approve", "abstain", "approve"]
    assert _licences_for(app, request_id)[0].document["approved_by"] == sorted(
        [second.account_id, fourth.account_id])


def test_a_requester_on_the_board_cannot_vote_on_their_own_request(client: TestClient, app: FastAPI) -> None:
    board_modeller = make_account(app, Role.MODELLER, Role.BOARD)
    other_modeller = make_account(app, Role.MODELLER)
    own_id = submit(client, board_modeller)["request_id"]
    response = vote(client, board_modeller, own_id, "approve")
    assert response.status_code == 403
    assert "cannot vote" in response.json()["detail"]
    assert client.get(f"/v1/licence-requests/{own_id}", headers=board_modeller.headers).json()["votes"] == []
    with session_scope(app.state.engine) as session:
        assert session.exec(select(Vote).where(Vote.request_id == own_id)).first() is None
    # The same account votes normally on somebody else's request.
    other_id = submit(client, other_modeller)["request_id"]
    assert vote(client, board_modeller, other_id, "approve").status_code == 201


@pytest.fixture
def client_with_quorum(settings: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, FastAPI]]:
    app = create_app(settings.model_copy(update={"board_quorum": request.param}))
    with TestClient(app) as client:
        yield client, app


@pytest.mark.parametrize("client_with_quorum", [1, 3], indirect=True)
def test_the_quorum_comes_from_the_settings(client_with_quorum: tuple[TestClient, FastAPI]) -> None:
    client, app = client_with_quorum
    quorum = app.state.settings.board_quorum
    modeller = make_account(app, Role.MODELLER)
    voters = board_members(app, quorum)
    request_id = submit(client, modeller)["request_id"]
    statuses = [vote(client, voter, request_id, "approve").json()["request_status"] for voter in voters]
    assert statuses == ["submitted"] * (quorum - 1) + ["approved"]
    assert len(_licences_for(app, request_id)) == 1

    rejected_id = submit(client, modeller)["request_id"]
    statuses = [vote(client, voter, rejected_id, "reject").json()["request_status"] for voter in voters]
    assert statuses == ["submitted"] * (quorum - 1) + ["rejected"]


def test_visibility_by_role(client: TestClient, app: FastAPI) -> None:
    alice = make_account(app, Role.MODELLER, name="Alice")
    bob = make_account(app, Role.MODELLER, name="Bob")
    [board] = board_members(app, 1)
    alice_request = submit(client, alice, title="Alice's study")["request_id"]
    bob_request = submit(client, bob, title="Bob's study")["request_id"]

    assert client.get(f"/v1/licence-requests/{bob_request}", headers=alice.headers).status_code == 404
    missing = client.get("/v1/licence-requests/00000000-0000-0000-0000-000000000000", headers=alice.headers)
    assert missing.status_code == 404
    assert missing.json()["detail"] == client.get(f"/v1/licence-requests/{bob_request}",
                                                  headers=alice.headers).json()["detail"]
    assert client.get(f"/v1/licence-requests/{alice_request}", headers=alice.headers).status_code == 200
    assert client.get(f"/v1/licence-requests/{bob_request}", headers=board.headers).status_code == 200

    def listed(caller_headers: dict[str, str], **params: str) -> set[str]:
        body = client.get("/v1/licence-requests", params=params, headers=caller_headers).json()
        return {item["request_id"] for item in body["items"]}

    assert listed(alice.headers) == {alice_request}
    assert listed(bob.headers) == {bob_request}
    assert listed(board.headers) == {alice_request, bob_request}


def test_listing_filters_by_status_and_paginates(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    voters = board_members(app, 2)
    ids = [submit(client, modeller, title=f"Study {n}")["request_id"] for n in range(4)]
    for voter in voters:
        vote(client, voter, ids[0], "approve")
    client.post(f"/v1/licence-requests/{ids[1]}/withdraw", headers=modeller.headers)

    def statuses(**params: str) -> list[str]:
        body = client.get("/v1/licence-requests", params=params, headers=voters[0].headers).json()
        return [item["request_id"] for item in body["items"]]

    assert statuses(status="approved") == [ids[0]]
    assert statuses(status="withdrawn") == [ids[1]]
    assert statuses(status="submitted") == ids[2:]
    assert statuses(status="rejected") == []
    assert client.get("/v1/licence-requests", params={"status": "pending"},
                      headers=modeller.headers).status_code == 422

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/licence-requests", params=params, headers=modeller.headers).json()
        assert len(page["items"]) <= 3
        seen += [item["request_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    approved = next(item for item in client.get("/v1/licence-requests", headers=modeller.headers).json()["items"]
                    if item["request_id"] == ids[0])
    assert approved["licence_id"] and len(approved["votes"]) == 2


def test_unknown_request_is_404_for_votes_and_withdrawal(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    [board] = board_members(app, 1)
    assert vote(client, board, "no-such-request", "approve").status_code == 404
    assert client.post("/v1/licence-requests/no-such-request/withdraw", headers=modeller.headers).status_code == 404


def test_the_audit_trail_is_paginated_and_board_only(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    [board] = board_members(app, 1)
    for n in range(3):
        submit(client, modeller, title=f"Study {n}")
    with session_scope(app.state.engine) as session:
        total = len(session.exec(select(AuditEvent)).all())
    assert total == 3
    first = client.get("/v1/audit", params={"limit": 2}, headers=board.headers).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get("/v1/audit", params={"limit": 2, "cursor": first["next_cursor"]}, headers=board.headers).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    titles = [e["detail"]["title"] for e in first["items"] + rest["items"]]
    assert titles == ["Study 0", "Study 1", "Study 2"]
    assert client.get("/v1/audit", headers=modeller.headers).status_code == 403
    assert client.get("/v1/audit", params={"cursor": "not-a-cursor"}, headers=board.headers).status_code == 422
