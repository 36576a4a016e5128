"""Every rights endpoint: 401 without a valid token, 403 for an account without the member role."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import make_account

ENDPOINTS = [
    ("GET", "/v1/me/pings"),
    ("GET", "/v1/me/pings?format=geojson"),
    ("GET", "/v1/me/pings?format=csv"),
    ("GET", "/v1/me/export"),
    ("DELETE", "/v1/me"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_anonymous_and_bad_tokens_are_401(client: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer coop_not-a-real-token"}, {"Authorization": "Basic eDp5"}):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("role", [Role.MODELLER, Role.BOARD, Role.TREASURER, Role.ADMIN])
def test_accounts_without_the_member_role_are_403(app: FastAPI, client: TestClient, method: str, path: str,
                                                  role: Role) -> None:
    caller = make_account(app, role, name="Not a member")
    response = client.request(method, path, headers=caller.headers)
    assert response.status_code == 403, response.text
    assert client.get("/v1/me", headers=caller.headers).status_code == 200  # DELETE did nothing


def test_a_revoked_token_is_401(app: FastAPI, client: TestClient) -> None:
    member = make_account(app, Role.MEMBER)
    spare = client.post("/v1/me/tokens", json={"label": "spare"}, headers=member.headers).json()
    assert client.delete(f"/v1/me/tokens/{spare['token_id']}", headers=member.headers).status_code == 204
    headers = {"Authorization": f"Bearer {spare['token']}"}
    for method, path in ENDPOINTS:
        assert client.request(method, path, headers=headers).status_code == 401
    assert client.get("/v1/me/export", headers=member.headers).status_code == 200
