"""Erasure and releases over sealed tables: a member's input counts in tables sealed before their erasure
(and in releases of them), never in tables sealed after; usage and export agree."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from coop.accounts.models import MemberKey
from coop.accounts.roles import Role
from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.releases.models import ReleaseContribution
from tests.rights.test_rights_export import export_of
from tests.support.factories import make_account
from tests.support.release_checks import built_release, release_rows
from tests.support.releases import consent_event, make_member
from tests.support.rights import send_pings
from tests.support.tables import approve, dataset, seal


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    """A huge budget, so the sealed numbers are the exact counts (tau = the k floor, 2)."""
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11",
                    privacy_budget_per_day=1e12, family_epsilon_per_day=1e9)


def test_an_erased_member_counts_in_tables_sealed_before_and_never_in_tables_sealed_after(
        app: FastAPI, client: TestClient) -> None:
    today = datetime.now(UTC).date()
    first_day, second_day = today - timedelta(days=4), today - timedelta(days=3)
    residents = [make_member(app, name=f"Resident {n}") for n in range(3)]
    for resident in residents:  # consent given before the pings' time
        consent_event(app, resident, at=datetime.now(UTC) - timedelta(days=10))
    members = [resident.caller for resident in residents]
    for member in members:
        send_pings(client, member, [
            {"id": f"{day}", "ts": f"{day.isoformat()}T10:{n:02d}:00Z", "lat": 53.4084, "lng": -2.9916}
            for n, day in enumerate((first_day, second_day))])
    modeller = make_account(app, Role.MODELLER, name="Modeller")
    licence = approve(client, app, modeller, dataset=dataset(start=first_day, days=3, k=2), fee_pence=0)

    first_due = datetime.combine(second_day, time(0), tzinfo=UTC) + timedelta(hours=49)
    seal(app, now=first_due)  # the first day is sealed, the second not yet
    before = built_release(client, app, modeller, licence["licence_id"], start=first_day, end=second_day)
    assert [row[3] for row in release_rows(client, modeller, before["release_id"])] == [3]
    erased = members[0]
    assert [r["release_id"] for r in export_of(client, erased)[0]["releases"]] == [before["release_id"]]

    assert client.delete("/v1/me", headers=erased.headers).status_code == 200
    seal(app, now=datetime.now(UTC))  # the second day is sealed after the erasure

    after = built_release(client, app, modeller, licence["licence_id"], start=second_day,
                          end=second_day + timedelta(days=1))
    assert [row[3] for row in release_rows(client, modeller, after["release_id"])] == [2]
    with session_scope(app.state.engine) as session:
        erased_no = session.exec(select(MemberKey.no).where(MemberKey.account_id == erased.account_id)).one()
        counted = session.exec(select(ReleaseContribution.release_id)
                               .where(ReleaseContribution.member_no == erased_no)).all()
    assert counted == [before["release_id"]]  # the past input stays: dividends rest on it

    remaining = export_of(client, members[1])[0]["releases"]
    assert [r["release_id"] for r in remaining] == [before["release_id"], after["release_id"]]
    usage = client.get("/v1/me/usage", headers=members[1].headers).json()["items"]
    assert remaining == usage
