"""Licensing and the ledger together: approval invoices the fee, payment settles it, the chain verifies."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import make_account
from tests.support.licensing import approved_licence, board_members, submit, vote


def _balances(client: TestClient, headers: dict[str, str]) -> dict[str, int]:
    body = client.get("/v1/ledger/accounts", headers=headers).json()
    items = body["items"] if isinstance(body, dict) else body
    return {a["code"]: a["balance_pence"] for a in items}


def test_approval_invoices_the_fee_and_payment_settles_it(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER, name="Mo", organisation="Merseytravel")
    treasurer = make_account(app, Role.TREASURER, name="Tess")
    licence = approved_licence(client, app, modeller, fee_pence=150_000)

    entries = client.get("/v1/ledger/entries", headers=treasurer.headers).json()["items"]
    [invoice] = [e for e in entries if licence["licence_id"] in e["memo"]]
    assert sorted((p["account"], p["amount_pence"]) for p in invoice["postings"]) == [
        ("licence-income", -150_000), ("licence-receivables", 150_000)]
    assert _balances(client, treasurer.headers)["licence-receivables"] == 150_000

    paid = client.post(f"/v1/licences/{licence['licence_id']}/payments", headers=treasurer.headers,
                       json={"amount_pence": 150_000, "reference": "BACS 0042"})
    assert paid.status_code == 201, paid.text
    balances = _balances(client, treasurer.headers)
    assert balances["licence-receivables"] == 0
    assert balances["cash"] == 150_000
    assert sum(balances.values()) == 0
    assert client.get(f"/v1/licences/{licence['licence_id']}", headers=modeller.headers).json()["paid_pence"] == 150_000
    verdict = client.get("/v1/ledger/verify", headers=treasurer.headers).json()
    assert verdict["ok"] is True and verdict["entries"] == 2


def test_a_free_licence_posts_nothing_and_a_rejected_request_posts_nothing(client: TestClient,
                                                                            app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER, name="Mo", organisation="Uni")
    treasurer = make_account(app, Role.TREASURER, name="Tess")
    approved_licence(client, app, modeller, fee_pence=0)
    request = submit(client, modeller)
    for voter in board_members(app, 2):
        assert vote(client, voter, request["request_id"], "reject").status_code == 201
    assert client.get("/v1/ledger/entries", headers=treasurer.headers).json()["items"] == []
