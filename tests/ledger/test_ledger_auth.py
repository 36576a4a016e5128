"""Every ledger endpoint: anonymous 401, wrong role 403; treasurer and board read, only treasurers write."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import make_account

MEMBER_ID = "00000000-0000-0000-0000-000000000001"
PAYMENT = {"amount_pence": 1, "reference": "r"}
DIVIDEND = {"period_start": "2026-01-01", "period_end": "2026-02-01"}

Endpoint = tuple[str, str, dict[str, Any] | None]

READS: list[Endpoint] = [("GET", "/v1/ledger/accounts", None), ("GET", "/v1/ledger/entries", None),
         ("GET", "/v1/ledger/verify", None), ("GET", "/v1/ledger/head", None),
         ("GET", "/v1/dividends/d1", None), ("GET", "/v1/dividends/d1/allocations", None)]
WRITES: list[Endpoint] = [("POST", "/v1/licences/l1/payments", PAYMENT), ("POST", "/v1/dividends", DIVIDEND),
          ("POST", f"/v1/members/{MEMBER_ID}/payouts", PAYMENT)]
STATEMENT: list[Endpoint] = [("GET", "/v1/me/statement", None)]
ENDPOINTS = READS + WRITES + STATEMENT


def _call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> int:
    status: int = client.request(method, path, json=body, headers=headers).status_code
    return status


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_is_401(client: TestClient, method: str, path: str, body: Any) -> None:
    assert _call(client, method, path, body, {}) == 401
    assert _call(client, method, path, body, {"Authorization": "Bearer not-a-token"}) == 401


@pytest.mark.parametrize(("method", "path", "body"), READS + WRITES)
def test_members_and_modellers_may_not_touch_the_ledger(app: FastAPI, client: TestClient, method: str,
                                                        path: str, body: Any) -> None:
    for role in (Role.MEMBER, Role.MODELLER, Role.ADMIN):
        assert _call(client, method, path, body, make_account(app, role).headers) == 403, role


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_the_board_reads_but_may_not_write(app: FastAPI, client: TestClient, method: str, path: str,
                                           body: Any) -> None:
    assert _call(client, method, path, body, make_account(app, Role.BOARD).headers) == 403


@pytest.mark.parametrize(("method", "path", "body"), READS)
def test_the_board_and_treasurer_may_read(app: FastAPI, client: TestClient, method: str, path: str,
                                          body: Any) -> None:
    for role in (Role.BOARD, Role.TREASURER):
        assert _call(client, method, path, body, make_account(app, role).headers) in (200, 404), role


def test_the_statement_is_for_members_only(app: FastAPI, client: TestClient) -> None:
    for role in (Role.TREASURER, Role.BOARD, Role.MODELLER, Role.ADMIN):
        assert _call(client, "GET", "/v1/me/statement", None, make_account(app, role).headers) == 403, role
    assert _call(client, "GET", "/v1/me/statement", None, make_account(app, Role.MEMBER).headers) == 200
