"""Small typed helpers for the licensing tests: request bodies, submitting, voting a request through."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import Caller, make_account

VALID_DATASET: dict[str, Any] = {
    "resolution": 9,
    "time_bucket": "hour",
    "start": "2026-11-02",
    "end": "2026-11-09",
    "region": {"bbox": [-3.2, 53.3, -2.8, 53.5]},
}

VALID_REQUEST: dict[str, Any] = {
    "title": "Bus network redesign",
    "purpose": "transport-planning",
    "organisation": "Merseytravel modelling unit",
    "public_benefit": "Better routes and timetables for residents.",
    "description": "Hourly flows between hexagons to calibrate the regional transport model.",
    "dataset": VALID_DATASET,
    "duration_days": 365,
    "fee_pence": 150_000,
}


def request_body(*, dataset: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid request body; ``dataset`` entries and top-level fields may be overridden."""
    body = copy.deepcopy(VALID_REQUEST)
    body["dataset"].update(dataset or {})
    body.update(overrides)
    return body


def board_members(app: FastAPI, count: int) -> list[Caller]:
    return [make_account(app, Role.BOARD, name=f"Board member {n}") for n in range(count)]


def submit(client: TestClient, modeller: Caller, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/licence-requests", json=request_body(**overrides), headers=modeller.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def vote(client: TestClient, voter: Caller, request_id: str, decision: str, **extra: Any) -> Any:
    return client.post(f"/v1/licence-requests/{request_id}/votes", json={"decision": decision, **extra},
                       headers=voter.headers)


def approved_licence(client: TestClient, app: FastAPI, modeller: Caller, **overrides: Any) -> dict[str, Any]:
    """A request by ``modeller`` voted through by two new board members; its licence as served."""
    request = submit(client, modeller, **overrides)
    voters = board_members(app, 2)
    for voter in voters:
        assert vote(client, voter, request["request_id"], "approve").status_code == 201
    licence_id = client.get(f"/v1/licence-requests/{request['request_id']}",
                            headers=voters[0].headers).json()["licence_id"]
    response = client.get(f"/v1/licences/{licence_id}", headers=modeller.headers)
    assert response.status_code == 200, response.text
    licence: dict[str, Any] = response.json()
    return licence
