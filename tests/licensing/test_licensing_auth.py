"""Every licensing endpoint: 401 without a (valid) token, 403 for an account without the role."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import make_account
from tests.support.licensing import approved_licence, request_body, submit

# (method, path template, JSON body, roles that may NOT call it)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, list[Role]]] = [
    ("POST", "/v1/licence-requests", request_body(), [Role.MEMBER, Role.BOARD, Role.TREASURER, Role.ADMIN]),
    ("GET", "/v1/licence-requests", None, [Role.MEMBER, Role.TREASURER, Role.ADMIN]),
    ("GET", "/v1/licence-requests/{request_id}", None, [Role.MEMBER, Role.TREASURER, Role.ADMIN]),
    ("POST", "/v1/licence-requests/{request_id}/votes", {"decision": "approve"},
     [Role.MEMBER, Role.MODELLER, Role.TREASURER, Role.ADMIN]),
    ("POST", "/v1/licence-requests/{request_id}/withdraw", None,
     [Role.MEMBER, Role.BOARD, Role.TREASURER, Role.ADMIN]),
    ("GET", "/v1/licences", None, [Role.MEMBER, Role.ADMIN]),
    ("GET", "/v1/licences/{licence_id}", None, [Role.MEMBER, Role.ADMIN]),
    ("POST", "/v1/licences/{licence_id}/revoke", {"reason": "test"},
     [Role.MEMBER, Role.MODELLER, Role.TREASURER, Role.ADMIN]),
    ("GET", "/v1/audit", None, [Role.MEMBER, Role.MODELLER, Role.TREASURER, Role.ADMIN]),
]


@pytest.mark.parametrize(("method", "template", "body", "refused"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_anonymous_is_401_and_wrong_role_is_403(client: TestClient, app: FastAPI, method: str, template: str,
                                               body: dict[str, Any] | None, refused: list[Role]) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = approved_licence(client, app, modeller)
    open_request = submit(client, modeller)
    path = template.format(request_id=open_request["request_id"], licence_id=licence["licence_id"])

    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")

    for role in refused:
        caller = make_account(app, role)
        response = client.request(method, path, json=body, headers=caller.headers)
        assert response.status_code == 403, (role, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")

    # Nothing changed: the open request is still open and unvoted, the licence still active.
    after = client.get(f"/v1/licence-requests/{open_request['request_id']}", headers=modeller.headers).json()
    assert after["status"] == "submitted" and after["votes"] == []
    assert client.get(f"/v1/licences/{licence['licence_id']}", headers=modeller.headers).json()["status"] == "active"


def test_the_treasurer_reads_every_licence_to_collect_its_fee(client: TestClient, app: FastAPI) -> None:
    licence = approved_licence(client, app, make_account(app, Role.MODELLER))
    treasurer = make_account(app, Role.TREASURER)
    listed = client.get("/v1/licences", headers=treasurer.headers).json()["items"]
    assert [item["licence_id"] for item in listed] == [licence["licence_id"]]
    read = client.get(f"/v1/licences/{licence['licence_id']}", headers=treasurer.headers).json()
    assert read["fee_pence"] - read["paid_pence"] == licence["fee_pence"]
