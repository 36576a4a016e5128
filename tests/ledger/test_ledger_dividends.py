"""Dividends (pool, weights, reserve, largest remainder, overlap), payouts and member statements."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coop.accounts.models import Account, MemberKey
from coop.accounts.roles import Role
from coop.kit.db import session_scope
from coop.ledger.models import LedgerEntry, LedgerPosting
from coop.ledger.verify import verify_chain
from tests.support.factories import Caller, make_account
from tests.support.ledger import days_ago, make_licence, make_release, noon, pay_licence

START, END = days_ago(40), days_ago(10)
"""The period every test declares: [40 days ago, 10 days ago)."""


@pytest.fixture
def treasurer(app: FastAPI) -> Caller:
    return make_account(app, Role.TREASURER, name="Tess")


def _declare(client: TestClient, caller: Caller, *, start: date = START, end: date = END,
             key: str | None = None, **extra: Any) -> Any:
    headers = dict(caller.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"period_start": start.isoformat(), "period_end": end.isoformat(), **extra}
    return client.post("/v1/dividends", json=body, headers=headers)


def _members(app: FastAPI, count: int) -> list[Caller]:
    return sorted((make_account(app, Role.MEMBER) for _ in range(count)), key=lambda c: c.account_id)


def _seed_period(app: FastAPI, treasurer: Caller, members: list[Caller], units: list[int],
                 paid: list[int]) -> str:
    """Payments and one ready release inside the period, plus noise outside it; returns the licence id."""
    licensee = make_account(app, Role.MODELLER)
    licence_id = make_licence(app, fee_pence=10**9, licensee=licensee)
    for amount in paid:
        pay_licence(app, licence_id=licence_id, amount_pence=amount, received_at=noon(START + timedelta(days=1)),
                    recorded_by=treasurer.account_id)
    # Outside the period (before it, and on its exclusive end day): never in this pool.
    pay_licence(app, licence_id=licence_id, amount_pence=777, received_at=noon(START - timedelta(days=1)),
                recorded_by=treasurer.account_id)
    pay_licence(app, licence_id=licence_id, amount_pence=555, received_at=noon(END),
                recorded_by=treasurer.account_id)
    weights = {m.account_id: u for m, u in zip(members, units, strict=True)}
    make_release(app, licence_id=licence_id, requested_by=licensee.account_id, built_at=noon(START + timedelta(days=2)),
                 units=weights)
    everyone = {m.account_id: 50 for m in members}
    make_release(app, licence_id=licence_id, requested_by=licensee.account_id, built_at=noon(END), units=everyone)
    make_release(app, licence_id=licence_id, requested_by=licensee.account_id, built_at=None, units=everyone,
                 status="failed")
    return licence_id


def test_a_dividend_splits_the_pool_by_contribution_units(app: FastAPI, client: TestClient, engine: Engine,
                                                          treasurer: Caller) -> None:
    members = _members(app, 3)
    _seed_period(app, treasurer, members, units=[1, 2, 3], paid=[6000, 4000])
    response = _declare(client, treasurer, reserve_bps=1500, key="div-1")
    assert response.status_code == 201, response.text
    dividend = response.json()
    # pool 10000; reserve floor(10000 * 0.15) = 1500; distributed 8500 split 1:2:3
    # = 1416.67, 2833.33, 4250 -> floors 1416 + 2833 + 4250 = 8499, the leftover penny to the 0.67.
    assert {k: dividend[k] for k in ("pool_pence", "reserve_pence", "distributed_pence", "members")} == {
        "pool_pence": 10000, "reserve_pence": 1500, "distributed_pence": 8500, "members": 3}
    allocations = client.get(f"/v1/dividends/{dividend['dividend_id']}/allocations",
                             headers=treasurer.headers).json()["items"]
    assert allocations == [
        {"member_id": members[0].account_id, "contribution_units": 1, "amount_pence": 1417},
        {"member_id": members[1].account_id, "contribution_units": 2, "amount_pence": 2833},
        {"member_id": members[2].account_id, "contribution_units": 3, "amount_pence": 4250},
    ]
    with Session(engine) as session:
        entry = session.exec(select(LedgerEntry).where(LedgerEntry.seq == dividend["ledger_seq"])).one()
        postings = session.exec(select(LedgerPosting.account_code, LedgerPosting.amount_pence)
                                .where(LedgerPosting.entry_seq == entry.seq).order_by(col(LedgerPosting.line))).all()
    assert entry.kind == "dividend"
    assert postings == [("licence-income", 10000), ("reserve", -1500),
                        (f"member:{members[0].account_id}", -1417), (f"member:{members[1].account_id}", -2833),
                        (f"member:{members[2].account_id}", -4250)]
    read = client.get(f"/v1/dividends/{dividend['dividend_id']}", headers=make_account(app, Role.BOARD).headers)
    assert read.status_code == 200 and read.json() == dividend
    assert read.json()["period_start"] == START.isoformat() and read.json()["reserve_bps"] == 1500


def test_reserve_defaults_to_the_setting_and_no_contributors_means_all_to_reserve(
        app: FastAPI, client: TestClient, treasurer: Caller) -> None:
    members = _members(app, 2)
    _seed_period(app, treasurer, members, units=[1, 1], paid=[1001])
    dividend = _declare(client, treasurer).json()
    assert dividend["reserve_bps"] == app.state.settings.reserve_bps == 2000
    assert (dividend["reserve_pence"], dividend["distributed_pence"]) == (200, 801)
    # The next period has a payment but no release: the whole pool goes to the reserve.
    licence_id = make_licence(app, fee_pence=5000)
    pay_licence(app, licence_id=licence_id, amount_pence=999, received_at=noon(END + timedelta(days=2)),
                recorded_by=treasurer.account_id)
    lonely = _declare(client, treasurer, start=END + timedelta(days=1), end=END + timedelta(days=5),
                      reserve_bps=0).json()
    assert (lonely["pool_pence"], lonely["reserve_pence"], lonely["distributed_pence"], lonely["members"]) == (
        999, 999, 0, 0)
    assert client.get(f"/v1/dividends/{lonely['dividend_id']}/allocations",
                      headers=treasurer.headers).json() == {"items": [], "next_cursor": None}


def test_an_empty_pool_closes_the_period_without_an_entry(app: FastAPI, client: TestClient, engine: Engine,
                                                          treasurer: Caller) -> None:
    dividend = _declare(client, treasurer).json()
    assert (dividend["pool_pence"], dividend["ledger_seq"]) == (0, None)
    with Session(engine) as session:
        assert session.exec(select(LedgerEntry)).all() == []
    assert _declare(client, treasurer).status_code == 409


@pytest.mark.parametrize(("start", "end"), [
    (START, END), (START - timedelta(days=5), START + timedelta(days=1)), (END - timedelta(days=1), END + timedelta(days=3)),
    (START + timedelta(days=3), START + timedelta(days=4)), (START - timedelta(days=1), END + timedelta(days=1)),
])
def test_overlapping_periods_are_409(client: TestClient, treasurer: Caller, start: date, end: date) -> None:
    assert _declare(client, treasurer).status_code == 201
    response = _declare(client, treasurer, start=start, end=end)
    assert response.status_code == 409 and "overlaps" in response.json()["detail"]


def test_adjacent_periods_are_fine(client: TestClient, treasurer: Caller) -> None:
    assert _declare(client, treasurer).status_code == 201
    assert _declare(client, treasurer, start=END, end=END + timedelta(days=1)).status_code == 201
    assert _declare(client, treasurer, start=START - timedelta(days=1), end=START).status_code == 201


def test_bad_periods_are_422(client: TestClient, treasurer: Caller) -> None:
    today = days_ago(0)
    assert _declare(client, treasurer, start=END, end=END).status_code == 422
    assert _declare(client, treasurer, start=END, end=START).status_code == 422
    assert _declare(client, treasurer, start=today, end=today + timedelta(days=1)).status_code == 422
    assert _declare(client, treasurer, reserve_bps=10001).status_code == 422
    assert _declare(client, treasurer, reserve_bps=-1).status_code == 422
    assert _declare(client, treasurer, reserve_bps=10.5).status_code == 422
    bad = client.post("/v1/dividends", json={"period_start": "yesterday", "period_end": "2026-01-01"},
                      headers=treasurer.headers)
    assert bad.status_code == 422
    assert _declare(client, treasurer, start=days_ago(1), end=today).status_code == 201


def test_dividend_idempotency(app: FastAPI, client: TestClient, engine: Engine, treasurer: Caller) -> None:
    _seed_period(app, treasurer, _members(app, 2), units=[1, 3], paid=[4000])
    first = _declare(client, treasurer, key="d1")
    again = _declare(client, treasurer, key="d1")
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    other = _declare(client, treasurer, key="d1", reserve_bps=0)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    with Session(engine) as session:
        assert len(session.exec(select(LedgerEntry).where(LedgerEntry.kind == "dividend")).all()) == 1


def test_unknown_dividend_is_404(client: TestClient, treasurer: Caller) -> None:
    assert client.get("/v1/dividends/nope", headers=treasurer.headers).status_code == 404
    assert client.get("/v1/dividends/nope/allocations", headers=treasurer.headers).status_code == 404


def test_allocations_page_by_member_id(app: FastAPI, client: TestClient, treasurer: Caller) -> None:
    members = _members(app, 5)
    _seed_period(app, treasurer, members, units=[1, 2, 3, 4, 5], paid=[1234])
    dividend_id = _declare(client, treasurer).json()["dividend_id"]
    url = f"/v1/dividends/{dividend_id}/allocations?limit=2"
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=treasurer.headers).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [a["member_id"] for a in seen] == [m.account_id for m in members]
    assert sum(a["amount_pence"] for a in seen) == 1234 - 1234 * 2000 // 10000


def test_erased_members_keep_their_allocation(app: FastAPI, client: TestClient, engine: Engine,
                                              treasurer: Caller) -> None:
    members = _members(app, 2)
    _seed_period(app, treasurer, members, units=[1, 1], paid=[1000])
    with session_scope(engine) as session:  # what erasure leaves: the account id, no key, no tokens
        account = session.get(Account, members[0].account_id)
        assert account is not None
        account.erased_at = noon(END)
        key = session.exec(select(MemberKey).where(MemberKey.account_id == members[0].account_id)).one()
        key.wrapped_key = None
        session.add(account)
        session.add(key)
    dividend = _declare(client, treasurer, reserve_bps=0).json()
    allocations = client.get(f"/v1/dividends/{dividend['dividend_id']}/allocations",
                             headers=treasurer.headers).json()["items"]
    assert [(a["member_id"], a["amount_pence"]) for a in allocations] == [
        (members[0].account_id, 500), (members[1].account_id, 500)]


def _payout(client: TestClient, caller: Caller, member_id: str, amount: Any, key: str | None = None) -> Any:
    headers = dict(caller.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/v1/members/{member_id}/payouts", json={"amount_pence": amount, "reference": "BACS out"},
                       headers=headers)


def test_statement_and_payouts(app: FastAPI, client: TestClient, engine: Engine, treasurer: Caller) -> None:
    members = _members(app, 2)
    _seed_period(app, treasurer, members, units=[1, 3], paid=[10000])
    dividend = _declare(client, treasurer, reserve_bps=2000).json()
    me = members[1]
    statement = client.get("/v1/me/statement", headers=me.headers).json()
    assert statement == {"balance_pence": 6000, "payouts": [], "dividends": [{
        "dividend_id": dividend["dividend_id"], "period_start": START.isoformat(), "period_end": END.isoformat(),
        "amount_pence": 6000, "contribution_units": 3}]}
    paid = _payout(client, treasurer, me.account_id, 2500, key="p1")
    assert paid.status_code == 201, paid.text
    assert _payout(client, treasurer, me.account_id, 2500, key="p1").json() == paid.json()
    assert _payout(client, treasurer, me.account_id, 2600, key="p1").status_code == 409
    over = _payout(client, treasurer, me.account_id, 3501)
    assert over.status_code == 409 and "balance" in over.json()["detail"]
    assert _payout(client, treasurer, me.account_id, 3500).status_code == 201
    assert _payout(client, treasurer, me.account_id, 1).status_code == 409
    statement = client.get("/v1/me/statement", headers=me.headers).json()
    assert statement["balance_pence"] == 0
    assert [(p["amount_pence"], p["reference"], p["member_id"]) for p in statement["payouts"]] == [
        (2500, "BACS out", me.account_id), (3500, "BACS out", me.account_id)]
    assert paid.json()["payout_id"] == statement["payouts"][0]["payout_id"]
    other = client.get("/v1/me/statement", headers=members[0].headers).json()
    assert (other["balance_pence"], other["payouts"]) == (2000, [])
    with engine.connect() as connection:
        assert verify_chain(connection).ok
    with Session(engine) as session:
        postings = session.exec(select(LedgerPosting.account_code, LedgerPosting.amount_pence)
                                .where(LedgerPosting.entry_seq == paid.json()["ledger_seq"])
                                .order_by(col(LedgerPosting.line))).all()
    assert postings == [(f"member:{me.account_id}", 2500), ("cash", -2500)]


def test_payout_to_unknown_or_non_member_is_404(app: FastAPI, client: TestClient, treasurer: Caller) -> None:
    assert _payout(client, treasurer, "no-such-member", 1).status_code == 404
    modeller = make_account(app, Role.MODELLER)
    assert _payout(client, treasurer, modeller.account_id, 1).status_code == 404
    assert _payout(client, treasurer, treasurer.account_id, 1).status_code == 404
    member = make_account(app, Role.MEMBER)
    assert _payout(client, treasurer, member.account_id, 1).status_code == 409
    assert _payout(client, treasurer, member.account_id, 0).status_code == 422
    assert _payout(client, treasurer, member.account_id, 1.0).status_code == 422


def test_a_new_member_has_an_empty_statement(app: FastAPI, client: TestClient) -> None:
    member = make_account(app, Role.MEMBER)
    assert client.get("/v1/me/statement", headers=member.headers).json() == {
        "balance_pence": 0, "dividends": [], "payouts": []}
