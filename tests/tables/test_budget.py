"""The co-op-wide privacy budget: the cost a request shows, the 409 that records nothing, the public
budget, the tables list and a member's privacy loss (with who may read what)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import h3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.models import Role
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from tests.support.factories import make_account
from tests.support.licensing import board_members, submit, vote
from tests.support.releases import at, cell10, consent_event, make_member, pings
from tests.support.tables import MONDAY, approve, dataset, modeller, seal

X9 = h3.cell_to_parent(cell10(), 9)
PROBLEM = "urn:coop:problem:privacy-budget-exhausted"


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11",
                    privacy_budget_per_day=1.0, family_epsilon_per_day=0.5)


def test_a_request_shows_its_cost_before_and_after_approval(client: TestClient, app: FastAPI) -> None:
    mo = modeller(app)
    board = board_members(app, 2)
    request = submit(client, mo, dataset=dataset())
    assert request["privacy"] == {"family_id": None, "opens_family": True, "epsilon_per_day": 0.5,
                                  "remaining_epsilon_per_day": 1.0}
    for voter in board:
        assert vote(client, voter, request["request_id"], "approve").status_code == 201
    approved = client.get(f"/v1/licence-requests/{request['request_id']}", headers=mo.headers).json()
    family_id = approved["privacy"]["family_id"]
    assert family_id is not None
    assert approved["privacy"] == {"family_id": family_id, "opens_family": True, "epsilon_per_day": 0.5,
                                   "remaining_epsilon_per_day": 0.5}
    joining = submit(client, mo, dataset=dataset(k=5, epsilon_per_day=0.9))
    assert joining["privacy"] == {"family_id": family_id, "opens_family": False, "epsilon_per_day": 0.5,
                                  "remaining_epsilon_per_day": 0.5}
    listed = client.get("/v1/licence-requests", headers=board[0].headers).json()["items"]
    assert [item["privacy"]["family_id"] for item in listed] == [family_id, family_id]


def test_an_approval_beyond_the_budget_is_409_and_records_nothing(client: TestClient, app: FastAPI) -> None:
    mo = modeller(app)
    board = board_members(app, 3)
    approve(client, app, mo, board, dataset=dataset(epsilon_per_day=0.6))
    request = submit(client, mo, dataset=dataset(resolution=8, epsilon_per_day=0.5))
    assert request["privacy"]["opens_family"] is True and request["privacy"]["remaining_epsilon_per_day"] == 0.4
    assert vote(client, board[0], request["request_id"], "approve").status_code == 201  # not deciding yet
    audit_before = client.get("/v1/audit", headers=board[0].headers).json()["items"]

    refused = vote(client, board[1], request["request_id"], "approve", comment="yes")
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == PROBLEM
    after = client.get(f"/v1/licence-requests/{request['request_id']}", headers=mo.headers).json()
    assert after["status"] == "submitted" and after["licence_id"] is None
    assert [v["voter_id"] for v in after["votes"]] == [board[0].account_id]
    assert client.get("/v1/audit", headers=board[0].headers).json()["items"] == audit_before
    budget = client.get("/v1/privacy-budget").json()
    assert budget["spent_epsilon_per_day"] == 0.6 and len(budget["families"]) == 1

    # The refused board member may vote again later (nothing was recorded); a request that joins the
    # open family costs nothing and is approved at once.
    joining = submit(client, mo, dataset=dataset(k=4))
    assert joining["privacy"]["opens_family"] is False
    for voter in board[:2]:
        assert vote(client, voter, joining["request_id"], "approve").status_code == 201
    assert vote(client, board[2], request["request_id"], "reject").status_code == 201


def test_the_public_budget_lists_every_open_family(client: TestClient, app: FastAPI) -> None:
    assert client.get("/v1/privacy-budget").json() == {
        "privacy_unit": "member-day", "cap_epsilon_per_day": 1.0, "spent_epsilon_per_day": 0.0,
        "remaining_epsilon_per_day": 1.0, "families": []}
    mo = modeller(app)
    first = approve(client, app, mo, dataset=dataset())
    second = approve(client, app, mo, dataset=dataset(time_bucket="hour", epsilon_per_day=0.25),
                     purpose="public-health")
    budget = client.get("/v1/privacy-budget").json()
    assert budget["spent_epsilon_per_day"] == 0.75 and budget["remaining_epsilon_per_day"] == 0.25
    assert budget["families"] == [
        {"family_id": first["family_id"], "kind": "presence", "purpose": "transport-planning",
         "time_bucket": "day", "resolution": 9, "epsilon_per_day": 0.5},
        {"family_id": second["family_id"], "kind": "presence", "purpose": "public-health",
         "time_bucket": "hour", "resolution": 9, "epsilon_per_day": 0.25}]


def test_tables_list_families_with_their_parameters_and_seal_state(client: TestClient, app: FastAPI) -> None:
    mo = modeller(app)
    licence = approve(client, app, mo, dataset=dataset())
    [table] = client.get("/v1/tables", headers=mo.headers).json()["items"]
    assert set(table) == {"family_id", "kind", "purpose", "time_bucket", "resolution", "epsilon_per_day", "delta",
                          "tau", "contribution_bound", "opened_at", "sealed_through"}
    assert table["family_id"] == licence["family_id"] and table["sealed_through"] is None
    assert table["contribution_bound"] == 3 and table["delta"] == 1e-7 and table["tau"] >= 2
    seal(app, now=at(MONDAY + timedelta(days=3)))
    [table] = client.get("/v1/tables", headers=mo.headers).json()["items"]
    assert table["sealed_through"] == "2026-11-03T00:00:00Z"


def test_who_may_read_tables_budget_and_privacy_loss(client: TestClient, app: FastAPI) -> None:
    member = make_account(app, Role.MEMBER)
    for role in (Role.MODELLER, Role.BOARD, Role.TREASURER):
        assert client.get("/v1/tables", headers=make_account(app, role).headers).status_code == 200
    assert client.get("/v1/tables").status_code == 401
    assert client.get("/v1/tables", headers=member.headers).status_code == 403
    assert client.get("/v1/tables", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/v1/privacy-budget").status_code == 200
    assert client.get("/v1/me/privacy-loss").status_code == 401
    assert client.get("/v1/me/privacy-loss", headers=make_account(app, Role.BOARD).headers).status_code == 403
    assert client.get("/v1/me/privacy-loss", headers=member.headers).status_code == 200


def test_a_member_sees_the_epsilon_charged_to_each_day(client: TestClient, app: FastAPI) -> None:
    mo = modeller(app)
    daily = approve(client, app, mo, dataset=dataset(epsilon_per_day=0.5))
    weekly = approve(client, app, mo, dataset=dataset(time_bucket="week", epsilon_per_day=0.25))
    assert daily["family_id"] != weekly["family_id"]
    member, other = make_member(app, name="Me"), make_member(app, name="Other")
    for someone in (member, other):
        consent_event(app, someone, at=at(MONDAY - timedelta(days=7)))
    pings(app, member, [(at(MONDAY + timedelta(days=2), 9), X9)])  # Wednesday only
    seal(app, now=at(MONDAY + timedelta(days=10)))
    response = client.get("/v1/me/privacy-loss", params={"start": "2026-10-31", "end": "2026-11-10"},
                          headers=member.caller.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["privacy_unit"] == "member-day" and body["cap_epsilon_per_day"] == 1.0
    days = {day["date"]: day["epsilon"] for day in body["days"]}
    assert list(days) == [f"2026-{m:02d}-{d:02d}" for m, d in [(10, 31), *((11, n) for n in range(1, 10))]]
    # The weekly table charges all seven days of its week; the daily one only Wednesday.
    assert days == {"2026-10-31": 0.0, "2026-11-01": 0.0, "2026-11-02": 0.25, "2026-11-03": 0.25,
                    "2026-11-04": 0.75, "2026-11-05": 0.25, "2026-11-06": 0.25, "2026-11-07": 0.25,
                    "2026-11-08": 0.25, "2026-11-09": 0.0}
    other_days = client.get("/v1/me/privacy-loss", params={"start": "2026-11-01", "end": "2026-11-10"},
                            headers=other.caller.headers).json()["days"]
    assert {day["epsilon"] for day in other_days} == {0.0}  # no pings: no input, no loss


def test_privacy_loss_defaults_to_the_last_30_days_and_refuses_bad_ranges(client: TestClient, app: FastAPI) -> None:
    member = make_account(app, Role.MEMBER)
    days = client.get("/v1/me/privacy-loss", headers=member.headers).json()["days"]
    today = utcnow().date()
    assert [day["date"] for day in days] == [(today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    for params in ({"start": "2026-11-10", "end": "2026-11-10"}, {"start": "2026-11-10", "end": "2026-11-01"},
                   {"start": "2026-02-30"}, {"start": "yesterday"}, {"end": "20261101"},
                   {"start": "2020-01-01", "end": "2026-01-01"}, {"end": "0001-01-05"}):
        response = client.get("/v1/me/privacy-loss", params=params, headers=member.headers)
        assert response.status_code == 422, (params, response.text)
