"""Releases over real sealing, at a budget where the noise is real (sigma ~3): two licences on one family
with different regions and k agree on every common cell-bucket although a withdrawal, an erasure and a
late ping happen between their builds; the files hold exactly the family's sealed rows; a period not yet
sealed is 409; and a member whose cell was suppressed has the same usage units and dividend share as a
member whose cell was published."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import h3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.models import Role
from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.ledger.dividends import declare_dividend
from tests.support.factories import Caller, make_account
from tests.support.ledger import make_licence as make_fee_licence
from tests.support.ledger import noon, pay_licence
from tests.support.release_checks import built_release, release_rows, request_release
from tests.support.releases import Member, at, cell10, consent_event, make_member, pings, siblings
from tests.support.tables import MONDAY, SEAL_NOW, approve, cell_rows, dataset, seal

X9, Y9, *_ = siblings(h3.cell_to_parent(cell10(), 9))
FAR9 = h3.cell_to_parent(cell10(53.6475, -3.0053), 9)  # Southport, far from the others
BEFORE = at(MONDAY - timedelta(days=7))
DAYS = 3
CITY = {"bbox": [-3.1, 53.3, -2.8, 53.5]}


def _around(cell: str, margin: float = 0.0012) -> dict[str, Any]:
    lat, lng = h3.cell_to_latlng(cell)
    return {"bbox": [lng - margin, lat - margin, lng + margin, lat + margin]}


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    """Families cost epsilon 5 per member-day here (sigma ~3.4, tau 22): real noise, small populations."""
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11",
                    privacy_budget_per_day=10.0, family_epsilon_per_day=5.0)


def _crowd(app: FastAPI, count: int, cell: str, name: str) -> list[Member]:
    crowd = [make_member(app, name=f"{name} {n}") for n in range(count)]
    for n, member in enumerate(crowd):
        consent_event(app, member, at=BEFORE)
        pings(app, member, [(at(MONDAY + timedelta(days=day), 9 + n % 8, n % 60), cell) for day in range(DAYS)])
    return crowd


def _licence(client: TestClient, app: FastAPI, *, region: dict[str, Any] | None, k: int,
             days: int = 7) -> tuple[Caller, dict[str, Any]]:
    modeller = make_account(app, Role.MODELLER, name=f"Modeller k={k}", organisation="Transport Lab")
    return modeller, approve(client, app, modeller, dataset=dataset(region=region, k=k, days=days), fee_pence=0)


def _day(offset: int) -> str:
    return f"{(MONDAY + timedelta(days=offset)).isoformat()}T00:00:00Z"


def test_two_licences_on_one_family_agree_through_a_withdrawal_an_erasure_and_a_late_ping(
        client: TestClient, app: FastAPI) -> None:
    wide_modeller, wide = _licence(client, app, region=CITY, k=2)
    narrow_modeller, narrow = _licence(client, app, region=_around(X9), k=40)
    assert wide["family_id"] == narrow["family_id"] is not None
    central = _crowd(app, 60, X9, "Central")
    _crowd(app, 30, Y9, "Neighbour")
    seal(app)
    end = MONDAY + timedelta(days=DAYS)
    first = built_release(client, app, wide_modeller, wide["licence_id"], start=MONDAY, end=end)
    sealed_before = cell_rows(app, wide["family_id"])

    withdrawn, erased = central[0], central[1]
    consent_event(app, withdrawn, at=utcnow(), given=False)
    assert client.delete("/v1/me", headers=erased.caller.headers).status_code == 200
    latecomer = make_member(app, name="Latecomer")
    consent_event(app, latecomer, at=BEFORE)
    pings(app, latecomer, [(at(MONDAY, 12), X9)])  # pings for sealed days: stored, never aggregated
    pings(app, central[2], [(at(MONDAY, 23), Y9)])
    seal(app, now=SEAL_NOW + timedelta(days=1))
    assert cell_rows(app, wide["family_id"]) == sealed_before  # sealed days never change

    second = built_release(client, app, narrow_modeller, narrow["licence_id"], start=MONDAY, end=end)
    wide_rows = release_rows(client, wide_modeller, first["release_id"])
    narrow_rows = release_rows(client, narrow_modeller, second["release_id"])
    assert {row[0] for row in narrow_rows} == {_day(d) for d in range(DAYS)}  # X9 is in on every day
    assert {row[1] for row in narrow_rows} == {X9} and all(row[3] >= 40 for row in narrow_rows)
    published = {(bucket, cell): members for bucket, cell, _, members in wide_rows}
    for bucket, cell, _, members in narrow_rows:
        assert published[(bucket, cell)] == members  # one published value per cell-bucket, for ever
    assert {cell for _, cell, _, _ in wide_rows} >= {X9, Y9}
    assert first["family_id"] == second["family_id"] and first["privacy"] == second["privacy"]


def test_a_release_holds_exactly_the_sealed_rows_of_its_period_region_and_k(
        client: TestClient, app: FastAPI) -> None:
    modeller, licence = _licence(client, app, region=None, k=25)
    _crowd(app, 45, X9, "Central")
    _crowd(app, 24, Y9, "Neighbour")
    _crowd(app, 3, FAR9, "Southport")
    seal(app)
    manifest = built_release(client, app, modeller, licence["licence_id"], start=MONDAY,
                             end=MONDAY + timedelta(days=2))
    sealed = [row for row in cell_rows(app, licence["family_id"]) if row[0] in {_day(0), _day(1)}]
    assert release_rows(client, modeller, manifest["release_id"]) == [row for row in sealed if row[3] >= 25]
    assert manifest["stats"] == {"rows": len([row for row in sealed if row[3] >= 25])}
    assert all(row[3] >= manifest["privacy"]["tau"] for row in sealed)


def test_a_period_sealed_only_in_part_is_409_and_releasable_once_sealed(
        client: TestClient, app: FastAPI) -> None:
    modeller, licence = _licence(client, app, region=None, k=2)
    _crowd(app, 30, X9, "Central")
    refused = request_release(client, modeller, licence["licence_id"], start=MONDAY, end=MONDAY + timedelta(days=3))
    assert refused.status_code == 409 and refused.json()["sealed_through"] is None
    seal(app, now=at(MONDAY + timedelta(days=4)))  # Monday and Tuesday are 48 h past; Wednesday is not
    partly = request_release(client, modeller, licence["licence_id"], start=MONDAY, end=MONDAY + timedelta(days=3))
    assert partly.status_code == 409 and partly.json()["sealed_through"] == _day(2)
    seal(app)
    built_release(client, app, modeller, licence["licence_id"], start=MONDAY, end=MONDAY + timedelta(days=3))


def test_a_suppressed_member_has_the_units_and_dividend_share_of_a_published_one(
        client: TestClient, app: FastAPI) -> None:
    modeller, licence = _licence(client, app, region=None, k=2, days=1)
    published = _crowd(app, 30, X9, "Central")[:1]
    lone = _crowd(app, 1, FAR9, "Southport")  # alone in Southport: below tau at every level, suppressed
    seal(app)
    manifest = built_release(client, app, modeller, licence["licence_id"], start=MONDAY,
                             end=MONDAY + timedelta(days=1))
    rows = release_rows(client, modeller, manifest["release_id"])
    assert X9 in {row[1] for row in rows}
    assert not any(h3.cell_to_parent(FAR9, row[2]) == row[1] for row in rows if row[2] <= 9)
    usage = [client.get("/v1/me/usage", headers=m.caller.headers).json()["items"] for m in (*published, *lone)]
    assert [[item["contribution_units"] for item in items] for items in usage] == [[1], [1]]
    assert usage[0][0]["release_id"] == usage[1][0]["release_id"] == manifest["release_id"]

    treasurer = make_account(app, Role.TREASURER, name="Treasurer")
    today = utcnow().date()
    paying = make_fee_licence(app, fee_pence=31_000)  # the pool: any licence payment in the period
    pay_licence(app, licence_id=paying, amount_pence=31_000, received_at=noon(today),
                recorded_by=treasurer.account_id)
    with session_scope(app.state.engine) as session:
        dividend = declare_dividend(session, period_start=today, period_end=today + timedelta(days=1),
                                    reserve_bps=0, declared_by=treasurer.account_id,
                                    today=today + timedelta(days=1))
    allocations = client.get(f"/v1/dividends/{dividend.dividend_id}/allocations", params={"limit": 1000},
                             headers=treasurer.headers).json()["items"]
    share = {item["member_id"]: (item["contribution_units"], item["amount_pence"]) for item in allocations}
    assert dividend.members == 31 and sum(amount for _, amount in share.values()) == 31_000
    assert share[lone[0].account_id] == share[published[0].account_id] == (1, 1000)
