"""Sign-up, /v1/me, tokens (revocation at once), admin account creation, roles and rate limits."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import make_account, sign_up_member


def test_sign_up_returns_a_working_token(client: TestClient) -> None:
    member = sign_up_member(client, display_name="Ada")
    me = client.get("/v1/me", headers=member.headers).json()
    assert me["account_id"] == member.account_id
    assert me["roles"] == ["member"]
    assert me["display_name"] == "Ada"
    assert me["collection_paused"] is False
    assert me["created_at"].endswith("Z") or me["created_at"].endswith("+00:00")


def test_sign_up_with_stale_terms_is_409(client: TestClient) -> None:
    response = client.post("/v1/members", json={"accept_terms_version": "1999-01"})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 409


def test_sign_up_rejects_unknown_fields_and_missing_terms(client: TestClient) -> None:
    assert client.post("/v1/members", json={}).status_code == 422
    assert client.post("/v1/members", json={"accept_terms_version": "2026-11", "roles": ["admin"]}).status_code == 422


def test_tokens_are_listed_without_secrets_and_revocation_is_immediate(client: TestClient) -> None:
    member = sign_up_member(client)
    created = client.post("/v1/me/tokens", json={"label": "phone"}, headers=member.headers)
    assert created.status_code == 201
    second = created.json()
    second_headers = {"Authorization": f"Bearer {second['token']}"}
    assert client.get("/v1/me", headers=second_headers).status_code == 200

    listing = client.get("/v1/me/tokens", headers=member.headers).json()
    assert {t["token_id"] for t in listing["items"]} == {member.token_id, second["token_id"]}
    assert all("token" not in t for t in listing["items"])

    assert client.delete(f"/v1/me/tokens/{second['token_id']}", headers=member.headers).status_code == 204
    assert client.get("/v1/me", headers=second_headers).status_code == 401
    assert client.get("/v1/me", headers=member.headers).status_code == 200
    assert client.delete(f"/v1/me/tokens/{second['token_id']}", headers=member.headers).status_code == 404


def test_token_listing_paginates(client: TestClient) -> None:
    member = sign_up_member(client)
    for n in range(4):
        client.post("/v1/me/tokens", json={"label": f"t{n}"}, headers=member.headers)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/me/tokens", params=params, headers=member.headers).json()
        seen += [t["token_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and len(set(seen)) == 5
    assert client.get("/v1/me/tokens", params={"cursor": "!!"}, headers=member.headers).status_code == 422
    assert client.get("/v1/me/tokens", params={"limit": 1001}, headers=member.headers).status_code == 422


def test_another_accounts_token_cannot_be_revoked(client: TestClient) -> None:
    alice, bob = sign_up_member(client), sign_up_member(client)
    assert client.delete(f"/v1/me/tokens/{bob.token_id}", headers=alice.headers).status_code == 404
    assert client.get("/v1/me", headers=bob.headers).status_code == 200


def test_admin_creates_accounts_with_roles(client: TestClient, app: FastAPI) -> None:
    admin = make_account(app, Role.ADMIN, name="Root")
    response = client.post("/v1/accounts", headers=admin.headers,
                           json={"roles": ["board", "treasurer"], "display_name": "Tess", "organisation": "Co-op"})
    assert response.status_code == 201
    token = response.json()["token"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["roles"] == ["board", "treasurer"] and me["organisation"] == "Co-op"
    assert client.post("/v1/accounts", headers=admin.headers,
                       json={"roles": ["emperor"], "display_name": "X"}).status_code == 422


def test_protected_endpoints_need_a_token_and_the_right_role(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    for method, path in [("GET", "/v1/me"), ("POST", "/v1/me/tokens"), ("GET", "/v1/me/tokens"),
                         ("DELETE", "/v1/me/tokens/x"), ("POST", "/v1/accounts")]:
        anonymous = client.request(method, path, json={} if method == "POST" else None)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["content-type"].startswith("application/problem+json")
        bad = client.request(method, path, headers={"Authorization": "Bearer nope"},
                             json={} if method == "POST" else None)
        assert bad.status_code == 401, (method, path)
    wrong_role = client.post("/v1/accounts", headers=member.headers,
                             json={"roles": ["board"], "display_name": "Me"})
    assert wrong_role.status_code == 403


def test_sign_up_is_rate_limited_per_address(client: TestClient, app: FastAPI) -> None:
    limit = app.state.settings.signup_rate_per_hour
    for _ in range(limit):
        assert client.post("/v1/members", json={"accept_terms_version": "2026-11"}).status_code == 201
    response = client.post("/v1/members", json={"accept_terms_version": "2026-11"})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
