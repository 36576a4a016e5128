"""Every consent endpoint: anonymous (or a bad token) is 401, an account without the member role is 403."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import make_account

ZONE = {"lat": 53.4, "lng": -2.98, "radius_m": 100}
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/me/consents", None),
    ("PUT", "/v1/me/consents/transport-planning", {"given": True, "policy_version": "1"}),
    ("GET", "/v1/me/consents/events", None),
    ("GET", "/v1/me/receipts/00000000-0000-0000-0000-000000000000", None),
    ("PUT", "/v1/me/collection", {"paused": True}),
    ("POST", "/v1/me/privacy-zones", ZONE),
    ("GET", "/v1/me/privacy-zones", None),
    ("DELETE", "/v1/me/privacy-zones/00000000-0000-0000-0000-000000000000", None),
]


def call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> int:
    response: httpx.Response = client.request(method, path, json=body, headers=headers)
    return response.status_code


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_and_bad_tokens_are_401(client: TestClient, method: str, path: str, body: Any) -> None:
    assert call(client, method, path, body, {}) == 401
    assert call(client, method, path, body, {"Authorization": "Bearer coop_not-a-real-token"}) == 401


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_accounts_without_the_member_role_are_403(client: TestClient, app: FastAPI, method: str, path: str,
                                                  body: Any) -> None:
    for role in (Role.BOARD, Role.MODELLER, Role.TREASURER, Role.ADMIN):
        caller = make_account(app, role)
        assert call(client, method, path, body, caller.headers) == 403, role
    with app.state.engine.connect() as connection:
        counts = [connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()  # noqa: S608
                  for table in ("consent_event", "privacy_zone")]
    assert counts == [0, 0]


def test_a_revoked_token_is_401(client: TestClient, app: FastAPI) -> None:
    member = make_account(app, Role.MEMBER)
    assert client.get("/v1/me/consents", headers=member.headers).status_code == 200
    assert client.delete(f"/v1/me/tokens/{member.token_id}", headers=member.headers).status_code == 204
    for method, path, body in ENDPOINTS:
        assert call(client, method, path, body, member.headers) == 401, path


def test_a_member_with_other_roles_too_may_use_every_endpoint(client: TestClient, app: FastAPI) -> None:
    caller = make_account(app, Role.MEMBER, Role.BOARD)
    statuses = [call(client, method, path, body, caller.headers) for method, path, body in ENDPOINTS]
    assert statuses == [200, 200, 200, 404, 200, 201, 200, 404]


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/v1/me/consents/transport%00planning"),
    ("PUT", "/v1/me/consents/" + "a" * 5000),
    ("PUT", "/v1/me/consents/Transport-Planning"),
    ("GET", "/v1/me/receipts/%00"),
    ("GET", "/v1/me/receipts/" + "0" * 5000),
    ("DELETE", "/v1/me/privacy-zones/%00"),
    ("DELETE", "/v1/me/privacy-zones/00000000-0000-0000-0000-00000000000%00"),
])
def test_hostile_path_segments_are_404_not_5xx(client: TestClient, app: FastAPI, method: str, path: str) -> None:
    member = make_account(app, Role.MEMBER)
    body = {"given": True, "policy_version": "1"} if method == "PUT" else None
    response = client.request(method, path, json=body, headers=member.headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
