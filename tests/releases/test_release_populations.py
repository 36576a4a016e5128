"""Releases over hand-built populations, end to end (licence approved through the API, real sealing,
release built through the API), with exact expected rows.

The family here has a huge budget (epsilon 1e9 per member-day): the noise is ~1e-4 and tau equals the k
floor (2), so the sealed numbers are the exact counts and every expected row can be written by hand.
The intents are those of the design's "Privacy model": a cell below the threshold moves to its parent
and counts there only among the moved; a lone member far away is suppressed; a parent minus its children
reveals nobody; consent is judged per ping and again when the bucket is sealed; withdrawn and erased
members never count; bounding; the licence's k is a filter on published values; the region selects
whole cells by centre; and usage counts input, not publication.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import h3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from coop.kit.settings import Settings
from tests.support.factories import Caller, make_account
from tests.support.release_checks import built_release, release_rows
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
from tests.support.tables import MONDAY, approve, dataset, seal

NEXT_DAY = MONDAY + timedelta(days=1)
BEFORE = at(MONDAY - timedelta(days=7))
X9 = h3.cell_to_parent(cell10(), 9)
X9, Y9, Z9, *_ = siblings(X9)
P8 = h3.cell_to_parent(X9, 8)
P7 = h3.cell_to_parent(X9, 7)
FAR9 = h3.latlng_to_cell(53.6475, -3.0053, 9)  # Southport
HOUR9 = "2026-11-02T09:00:00Z"


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11",
                    privacy_budget_per_day=1e12, family_epsilon_per_day=1e9)


def members(app: FastAPI, count: int) -> list[Member]:
    found = [make_member(app, name=f"Resident {n}") for n in range(count)]
    for member in found:
        consent_event(app, member, at=BEFORE)
    return found


def licensed(client: TestClient, app: FastAPI, **spec: Any) -> tuple[Caller, str]:
    """A modeller and their approved, free licence (hourly, resolution 9 unless ``spec`` says otherwise)."""
    modeller = make_account(app, Role.MODELLER, name="Modeller")
    licence = approve(client, app, modeller, dataset=dataset(**{"time_bucket": "hour", **spec}), fee_pence=0)
    return modeller, licence["licence_id"]


def release(client: TestClient, app: FastAPI, modeller: Caller, licence_id: str) -> tuple[dict[str, Any],
                                                                                              list[Any]]:
    """Seal everything due, build the Monday release and return its manifest and rows."""
    seal(app)
    manifest = built_release(client, app, modeller, licence_id, start=MONDAY, end=NEXT_DAY)
    return manifest, release_rows(client, modeller, manifest["release_id"])


def units(client: TestClient, member: Member) -> list[int]:
    return [item["contribution_units"] for item in
            client.get("/v1/me/usage", headers=member.caller.headers).json()["items"]]


def test_the_licence_k_filters_published_cells_and_the_threshold_generalises(
        client: TestClient, app: FastAPI) -> None:
    modeller, licence = licensed(client, app, k=3)
    crowd = members(app, 6)
    for member in crowd[:3]:
        pings(app, member, [(at(MONDAY, 9, 10), X9), (at(MONDAY, 9, 40), X9)])
    for member in crowd[3:5]:
        pings(app, member, [(at(MONDAY, 9, 15), Y9)])  # 2 = tau: sealed at Y9, below the licence's k
    pings(app, crowd[5], [(at(MONDAY, 9, 20), FAR9)])  # 1 < tau at every level: suppressed
    manifest, rows = release(client, app, modeller, licence)
    assert rows == [(HOUR9, X9, 9, 3)]
    assert manifest["stats"] == {"rows": 1}
    assert units(client, crowd[3]) == units(client, crowd[5]) == units(client, crowd[0]) == [1]


def test_small_cells_move_to_the_parent_and_count_only_among_themselves(client: TestClient, app: FastAPI) -> None:
    modeller, licence = licensed(client, app, k=2)
    crowd = members(app, 4)
    pings(app, crowd[0], [(at(MONDAY, 9, 5), X9)])
    pings(app, crowd[1], [(at(MONDAY, 9, 6), X9)])
    pings(app, crowd[2], [(at(MONDAY, 9, 7), Y9)])
    pings(app, crowd[3], [(at(MONDAY, 9, 8), Z9)])
    _, rows = release(client, app, modeller, licence)
    # X9 has 2 (published); Y9 and Z9 have 1 each and meet in P8 with 2: P8 is NOT 4.
    assert rows == [(HOUR9, X9, 9, 2), (HOUR9, P8, 8, 2)]


def test_a_parent_minus_its_children_cannot_reveal_a_lone_member(client: TestClient, app: FastAPI) -> None:
    modeller, licence = licensed(client, app, k=2)
    crowd = members(app, 3)
    pings(app, crowd[0], [(at(MONDAY, 9, 5), X9)])
    pings(app, crowd[1], [(at(MONDAY, 9, 6), X9)])
    pings(app, crowd[2], [(at(MONDAY, 9, 7), Y9), (at(MONDAY, 10, 7), FAR9)])
    _, rows = release(client, app, modeller, licence)
    assert rows == [(HOUR9, X9, 9, 2)]
    assert not any(cell in {P8, P7} for _, cell, _, _ in rows)  # 3 - 2 would have exposed the lone member
    assert units(client, crowd[2]) == [2]  # two hours of input, although nothing of theirs was published


def test_consent_is_judged_per_ping_and_when_the_bucket_is_sealed(client: TestClient, app: FastAPI) -> None:
    modeller, licence = licensed(client, app, k=2)
    steady = members(app, 2)
    late = make_member(app, name="Late joiner")
    consent_event(app, late, at=at(MONDAY, 11, 30))
    other_purpose = make_member(app, name="Health only")
    consent_event(app, other_purpose, at=BEFORE, purpose="public-health")
    withdrawn = make_member(app, name="Withdrew")
    consent_event(app, withdrawn, at=BEFORE)
    consent_event(app, withdrawn, at=at(MONDAY, 20), given=False)  # after the pings, before sealing
    erased = make_member(app, name="Erased")
    consent_event(app, erased, at=BEFORE)
    nobody = make_member(app, name="Never consented")

    pings(app, steady[0], [(at(MONDAY, 9, 0), X9), (at(MONDAY, 12, 0), X9)])
    for member in (late, other_purpose, withdrawn, erased, nobody):
        pings(app, member, [(at(MONDAY, 9, 30), X9)])
    pings(app, late, [(at(MONDAY, 12, 30), X9)])  # now covered by the late joiner's consent
    pings(app, steady[1], [(at(MONDAY, 10, 0), Y9)])
    for member in (withdrawn, erased):
        pings(app, member, [(at(MONDAY, 10, 5), Y9)])
    erase(app, erased)
    _, rows = release(client, app, modeller, licence)
    assert rows == [("2026-11-02T12:00:00Z", X9, 9, 2)]
    assert units(client, late) == [1] and units(client, steady[0]) == [2]
    assert units(client, withdrawn) == units(client, other_purpose) == units(client, nobody) == []


def test_consent_given_again_after_a_withdrawal_covers_only_its_windows(client: TestClient, app: FastAPI) -> None:
    modeller, licence = licensed(client, app, k=2)
    anchor = members(app, 1)[0]
    flaky = make_member(app, name="Flaky")
    consent_event(app, flaky, at=BEFORE)
    consent_event(app, flaky, at=at(MONDAY, 10), given=False)
    consent_event(app, flaky, at=at(MONDAY, 14))
    for hour in (9, 11, 15):
        pings(app, anchor, [(at(MONDAY, hour, 1), X9)])
        pings(app, flaky, [(at(MONDAY, hour, 2), X9)])
    _, rows = release(client, app, modeller, licence)
    assert rows == [(HOUR9, X9, 9, 2), ("2026-11-02T15:00:00Z", X9, 9, 2)]


def test_contribution_bounding_keeps_the_busiest_cells_ties_to_the_smaller_id(
        client: TestClient, app: FastAPI) -> None:
    modeller, licence = licensed(client, app, k=2, time_bucket="day")
    pair = members(app, 2)
    cells = [h3.latlng_to_cell(LIVERPOOL[0] + 0.05 * n, LIVERPOOL[1], 9) for n in range(5)]
    tie_low, tie_high = sorted(cells[2:4], key=h3.str_to_int)
    plan = {cells[0]: 5, cells[1]: 4, tie_low: 3, tie_high: 3, cells[4]: 1}
    for member in pair:
        pings(app, member, [(at(MONDAY, 8, minute), cell) for cell, count in plan.items()
                            for minute in range(count)])
    _, rows = release(client, app, modeller, licence)
    expected = sorted([cells[0], cells[1], tie_low], key=h3.str_to_int)
    assert rows == [("2026-11-02T00:00:00Z", cell, 9, 2) for cell in expected]
    assert units(client, pair[0]) == [1]  # one day bucket of input (not three published rows)


def test_an_hour_counts_a_member_in_one_cell_only(client: TestClient, app: FastAPI) -> None:
    modeller, licence = licensed(client, app, k=2)
    pair = members(app, 2)
    for member in pair:
        pings(app, member, [(at(MONDAY, 9, 1), Y9), (at(MONDAY, 9, 2), X9), (at(MONDAY, 9, 3), X9)])
    _, rows = release(client, app, modeller, licence)
    assert rows == [(HOUR9, X9, 9, 2)]


def test_the_region_keeps_only_cells_whose_centre_is_inside_at_any_resolution(
        client: TestClient, app: FastAPI) -> None:
    lat, lng = h3.cell_to_latlng(P8)
    box = {"bbox": [lng - 0.002, lat - 0.002, lng + 0.002, lat + 0.002]}  # P8's centre, not X9's or Y9's
    modeller, licence = licensed(client, app, k=2, region=box)
    crowd = members(app, 4)
    for member in crowd[:2]:
        pings(app, member, [(at(MONDAY, 9, 1), X9), (at(MONDAY, 10, 1), FAR9)])
    pings(app, crowd[2], [(at(MONDAY, 9, 5), Y9)])
    pings(app, crowd[3], [(at(MONDAY, 9, 6), Z9)])
    _, rows = release(client, app, modeller, licence)
    # Sealed: X9 = 2 and P8 = {Y9, Z9} = 2 at 09:00, FAR9 = 2 at 10:00. Only P8's centre is in the box
    # (X9 lies inside P8's area, but its own centre is ~300 m from P8's: whole cells, by their centre).
    assert _inside(P8, box) and not _inside(X9, box) and not _inside(FAR9, box)
    assert rows == [(HOUR9, P8, 8, 2)]


def _inside(cell: str, box: dict[str, Any]) -> bool:
    min_lng, min_lat, max_lng, max_lat = box["bbox"]
    lat, lng = h3.cell_to_latlng(cell)
    return bool(min_lat <= lat <= max_lat and min_lng <= lng <= max_lng)


def test_pings_outside_the_period_do_not_count(client: TestClient, app: FastAPI) -> None:
    modeller, licence = licensed(client, app, k=2, time_bucket="day")
    pair = members(app, 2)
    for member in pair:
        pings(app, member, [(at(MONDAY, 0, 0), X9), (at(NEXT_DAY, 0, 0), Y9),
                            (at(MONDAY) - timedelta(milliseconds=1), Z9)])
    _, rows = release(client, app, modeller, licence)
    assert rows == [("2026-11-02T00:00:00Z", X9, 9, 2)]
