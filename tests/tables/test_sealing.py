"""Sealing: each due bucket once, from eligible pings only, identical for every licence on the family.

The families here have a huge budget (epsilon 1e9 per member-day), so the noise is ~1e-4 and tau equals
the k floor: the sealed rows must equal the exact counts an oracle computes by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.tables import service
from coop.tables.models import TableFamily
from tests.support.releases import (
    LIVERPOOL,
    Member,
    at,
    cell10,
    consent_event,
    erase,
    make_member,
    pings,
    siblings,
)
from tests.support.tables import (
    MONDAY,
    SEAL_NOW,
    approve,
    cell_rows,
    contributions,
    dataset,
    modeller,
    seal,
    sealed_buckets,
)

BEFORE = at(MONDAY - timedelta(days=7))
TUESDAY = MONDAY + timedelta(days=1)
X9 = h3.cell_to_parent(cell10(), 9)
X9, Y9, Z9, *_ = siblings(X9)
P8 = h3.cell_to_parent(X9, 8)
FAR9 = h3.cell_to_parent(cell10(53.65, -3.00), 9)  # Southport: far from the others
DAY = "2026-11-02T00:00:00Z"
DAY2 = "2026-11-03T00:00:00Z"


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11",
                    privacy_budget_per_day=1e12, family_epsilon_per_day=1e9)


def _crowd(app: FastAPI, count: int, *, consent_at: datetime = BEFORE) -> list[Member]:
    found = [make_member(app, name=f"Resident {n}") for n in range(count)]
    for member in found:
        consent_event(app, member, at=consent_at)
    return found


def test_a_daily_family_seals_the_exact_counts_with_bounding_and_generalisation(
        client: TestClient, app: FastAPI) -> None:
    licence = approve(client, app, modeller(app), dataset=dataset())
    a, b, c, d, e = (make_member(app, name=n) for n in "abcde")
    for member in (a, b, c, d, e):
        consent_event(app, member, at=BEFORE)
    for member in (a, b, c):
        pings(app, member, [(at(MONDAY, 9), X9), (at(MONDAY, 10), X9)])
    pings(app, d, [(at(MONDAY, 9), Y9)])
    pings(app, e, [(at(MONDAY, 11), Z9)])
    # a also visits four more cells once each on Tuesday: bounded to 3, ties to the smaller cell id.
    extra = sorted(siblings(Y9)[1:5], key=h3.str_to_int)
    pings(app, a, [(at(TUESDAY, 8), cell) for cell in extra])
    pings(app, b, [(at(TUESDAY, 8), extra[0])])
    assert licence["family_id"] is not None

    [report] = seal(app)
    assert report.family_id == licence["family_id"] and report.buckets_sealed == 26  # 2026-11-02 .. 27
    assert report.sealed_through == datetime(2026, 11, 28, tzinfo=UTC)
    rows = cell_rows(app, licence["family_id"])
    # Monday: X9 has 3; Y9 and Z9 have one each and meet at P8 with 2. Tuesday: extra[0] has a and b.
    assert rows == [(DAY, X9, 9, 3), (DAY, P8, 8, 2), (DAY2, extra[0], 9, 2)]
    units = contributions(app, licence["family_id"])
    assert units == {(m.account_id, "2026-11-02"): 1 for m in (a, b, c, d, e)} | {
        (a.account_id, "2026-11-03"): 1, (b.account_id, "2026-11-03"): 1}


def test_sealing_twice_changes_nothing(client: TestClient, app: FastAPI) -> None:
    licence = approve(client, app, modeller(app), dataset=dataset())
    for member in _crowd(app, 3):
        pings(app, member, [(at(MONDAY, 9), X9)])
    seal(app)
    before = (cell_rows(app, licence["family_id"]), contributions(app, licence["family_id"]),
              sealed_buckets(app, licence["family_id"]))
    [again] = seal(app)
    assert again.buckets_sealed == 0
    assert (cell_rows(app, licence["family_id"]), contributions(app, licence["family_id"]),
            sealed_buckets(app, licence["family_id"])) == before


def test_only_eligible_pings_count_and_late_pings_never(client: TestClient, app: FastAPI) -> None:
    licence = approve(client, app, modeller(app), dataset=dataset(days=2))
    steady = _crowd(app, 2)
    late_joiner, withdrawn, other_purpose, erased = (make_member(app, name=n) for n in ("late", "w", "o", "e"))
    consent_event(app, late_joiner, at=at(MONDAY, 12))
    consent_event(app, withdrawn, at=BEFORE)
    consent_event(app, withdrawn, at=at(MONDAY - timedelta(days=1)), given=False)
    consent_event(app, other_purpose, at=BEFORE, purpose="public-health")
    consent_event(app, erased, at=BEFORE)
    for member in steady:
        pings(app, member, [(at(MONDAY, 9), X9)])
    pings(app, late_joiner, [(at(MONDAY, 9), X9), (at(MONDAY, 13), Y9)])  # 09:00 is before their consent
    for member in (withdrawn, other_purpose, erased):
        pings(app, member, [(at(MONDAY, 9), X9)])
    erase(app, erased)
    seal(app, now=at(MONDAY + timedelta(days=3)))  # Monday is due, Tuesday not yet (48 h lateness)
    family_id = licence["family_id"]
    assert sealed_buckets(app, family_id) == [DAY]
    assert cell_rows(app, family_id) == [(DAY, X9, 9, 2)]  # Y9 (the late joiner alone) is suppressed
    assert set(contributions(app, family_id)) == {(m.account_id, "2026-11-02") for m in [*steady, late_joiner]}

    # A ping for Monday arriving after Monday was sealed is stored but never aggregated; Tuesday seals later.
    pings(app, late_joiner, [(at(MONDAY, 15), X9), (at(TUESDAY, 9), X9)])
    for member in steady:
        pings(app, member, [(at(TUESDAY, 9), X9)])
    seal(app, now=at(MONDAY + timedelta(days=4)))
    assert cell_rows(app, family_id) == [(DAY, X9, 9, 2), (DAY2, X9, 9, 3)]


def test_an_hourly_family_seals_one_row_per_hour_and_counts_hours_per_day(client: TestClient, app: FastAPI) -> None:
    licence = approve(client, app, modeller(app), dataset=dataset(time_bucket="hour", days=1))
    crowd = _crowd(app, 2)
    for member in crowd:
        pings(app, member, [(at(MONDAY, 9, 5), X9), (at(MONDAY, 9, 50), X9), (at(MONDAY, 17), X9)])
    seal(app, now=at(MONDAY + timedelta(days=3), 12))
    family_id = licence["family_id"]
    assert len(sealed_buckets(app, family_id)) == 24 + 12  # Monday, and Tuesday up to 12:00 (48 h before)
    assert cell_rows(app, family_id) == [("2026-11-02T09:00:00Z", X9, 9, 2), ("2026-11-02T17:00:00Z", X9, 9, 2)]
    assert contributions(app, family_id) == {(m.account_id, "2026-11-02"): 2 for m in crowd}
    with session_scope(app.state.engine) as session:
        family = session.get(TableFamily, family_id)
        assert family is not None
        assert service.sealed_through(session, family) == at(TUESDAY, 12)
        assert service.is_sealed(session, family, start=at(MONDAY), end=at(TUESDAY))
        assert not service.is_sealed(session, family, start=at(MONDAY), end=at(TUESDAY + timedelta(days=1)))


def test_a_weekly_family_records_input_on_its_monday(client: TestClient, app: FastAPI) -> None:
    licence = approve(client, app, modeller(app), dataset=dataset(time_bucket="week", days=14))
    crowd = _crowd(app, 2)
    for member in crowd:
        pings(app, member, [(at(MONDAY + timedelta(days=3), 9), X9), (at(MONDAY + timedelta(days=9), 9), X9)])
    seal(app, now=at(MONDAY + timedelta(days=15)))  # week 2 ended 1 day ago: not due yet
    family_id = licence["family_id"]
    assert sealed_buckets(app, family_id) == [DAY]
    assert cell_rows(app, family_id) == [(DAY, X9, 9, 2)]
    assert contributions(app, family_id) == {(m.account_id, "2026-11-02"): 1 for m in crowd}


def test_two_licences_on_one_family_read_the_same_numbers_through_withdrawal_erasure_and_late_pings(
        client: TestClient, app: FastAPI) -> None:
    """Different bbox and k, built at different times: every common cell-bucket has one value."""
    first = approve(client, app, modeller(app, "Merseytravel"), dataset=dataset(k=2))
    crowd = _crowd(app, 6)
    for member in crowd:
        pings(app, member, [(at(MONDAY, 9), X9), (at(TUESDAY, 9), X9)])
    for member in crowd[:2]:
        pings(app, member, [(at(MONDAY, 10), FAR9)])
    seal(app, now=at(MONDAY + timedelta(days=3)))  # Monday sealed
    family_id = first["family_id"]
    box = (LIVERPOOL[1] - 0.05, LIVERPOOL[0] - 0.05, LIVERPOOL[1] + 0.05, LIVERPOOL[0] + 0.05)
    with session_scope(app.state.engine) as session:
        monday_for_first = service.sealed_cells(session, family_id, start=at(MONDAY), end=at(TUESDAY), min_members=2)

    # Between the two licences: a withdrawal, an erasure and a late ping for Monday.
    consent_event(app, crowd[0], at=at(TUESDAY, 20), given=False)
    erase(app, crowd[1])
    pings(app, crowd[2], [(at(MONDAY, 11), FAR9)])
    second = approve(client, app, modeller(app, "Public health"),
                     dataset=dataset(k=3, region={"bbox": list(box)}, epsilon_per_day=0.7))
    assert second["family_id"] == family_id
    assert second["dataset"]["epsilon_per_day"] == 1e9  # the open family's epsilon stands
    seal(app, now=at(MONDAY + timedelta(days=4)))  # Tuesday sealed, without crowd[0] and crowd[1]

    with session_scope(app.state.engine) as session:
        monday_for_second = service.sealed_cells(session, family_id, start=at(MONDAY), end=at(TUESDAY),
                                                 bbox=box, min_members=3)
        monday_again = service.sealed_cells(session, family_id, start=at(MONDAY), end=at(TUESDAY), min_members=2)
        tuesday = service.sealed_cells(session, family_id, start=at(TUESDAY), end=at(TUESDAY + timedelta(days=1)))
    assert monday_again.equals(monday_for_first)
    common = monday_for_first.join(monday_for_second, on=["bucket_start", "cell", "resolution"], how="inner")
    assert common.height == 1 and common.get_column("members").to_list() == common.get_column("members_right").to_list()
    assert h3.str_to_int(FAR9) in monday_for_first.get_column("cell").to_list()  # outside the second's bbox
    assert h3.str_to_int(FAR9) not in monday_for_second.get_column("cell").to_list()
    assert tuesday.get_column("members").to_list() == [4]


def test_seal_from_follows_the_earliest_licence_of_the_family(client: TestClient, app: FastAPI) -> None:
    later = approve(client, app, modeller(app), dataset=dataset(start=MONDAY + timedelta(days=7)))
    seal(app, now=at(MONDAY + timedelta(days=10)))
    assert sealed_buckets(app, later["family_id"]) == ["2026-11-09T00:00:00Z"]
    earlier = approve(client, app, modeller(app, "Earlier"), dataset=dataset(start=MONDAY))
    assert earlier["family_id"] == later["family_id"]
    [report] = seal(app, now=at(MONDAY + timedelta(days=10)))
    assert report.buckets_sealed == 7 and len(sealed_buckets(app, later["family_id"])) == 8
    assert report.sealed_through == at(MONDAY + timedelta(days=8))


def test_nothing_is_due_before_the_lateness_has_passed(client: TestClient, app: FastAPI) -> None:
    licence = approve(client, app, modeller(app), dataset=dataset())
    [report] = seal(app, now=at(MONDAY + timedelta(days=2)) - timedelta(microseconds=1))
    assert report.buckets_sealed == 0 and report.sealed_through is None
    assert sealed_buckets(app, licence["family_id"]) == []
    [report] = seal(app, now=at(MONDAY + timedelta(days=3)))
    assert sealed_buckets(app, licence["family_id"]) == [DAY] and report.sealed_through == at(TUESDAY)


def test_the_default_budget_adds_noise_and_publishes_only_counts_of_at_least_tau(
        client: TestClient, app: FastAPI, settings: Settings) -> None:
    """At a real epsilon the rows are noisy (tau far above these tiny counts): nothing is published,
    and the family's tau and sigma are the plan's."""
    licence = approve(client, app, modeller(app), dataset=dataset(epsilon_per_day=0.5))
    for member in _crowd(app, 3):
        pings(app, member, [(at(MONDAY, 9), X9)])
    seal(app, now=SEAL_NOW)
    with session_scope(app.state.engine) as session:
        family = session.get(TableFamily, licence["family_id"])
        assert family is not None and family.epsilon_per_day == 0.5
        assert family.tau > settings.k_floor and family.sigma > 1
    assert all(members >= family.tau for *_, members in cell_rows(app, licence["family_id"]))
    assert len(contributions(app, licence["family_id"])) == 3  # input is recorded, published or not


def test_sealed_contribution_days_are_utc_days(client: TestClient, app: FastAPI) -> None:
    licence = approve(client, app, modeller(app), dataset=dataset(time_bucket="hour", days=2))
    [member] = _crowd(app, 1)
    pings(app, member, [(at(MONDAY, 23, 59), X9), (at(TUESDAY, 0, 1), X9)])
    seal(app)
    assert contributions(app, licence["family_id"]) == {(member.account_id, "2026-11-02"): 1,
                                                        (member.account_id, "2026-11-03"): 1}
