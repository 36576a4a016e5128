"""Release builds over hand-built populations, end to end through the API, with exact expected rows.

The attacks of design.md "Privacy model": a cell with k-1 members, a lone member in a remote cell, a
parent cell minus its children, consent that began after some pings, withdrawal before the build, an
erased member; plus contribution bounding and the region filter.
"""

from __future__ import annotations

from datetime import date, timedelta

import h3
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import make_account
from tests.support.release_checks import built_release, release_rows
from tests.support.releases import (
    LIVERPOOL,
    Member,
    at,
    cell10,
    consent_event,
    erase,
    make_licence,
    make_member,
    pings,
    siblings,
)

MONDAY = date(2026, 11, 2)
NEXT_DAY = MONDAY + timedelta(days=1)
BEFORE = at(MONDAY - timedelta(days=7))
X9 = h3.cell_to_parent(cell10(), 9)
X9, Y9, Z9, *_ = siblings(X9)
P8 = h3.cell_to_parent(X9, 8)
P7 = h3.cell_to_parent(X9, 7)
HOUR9 = "2026-11-02T09:00:00Z"


def members(app: FastAPI, count: int, *, consent_at: object = BEFORE) -> list[Member]:
    found = [make_member(app, name=f"Resident {n}") for n in range(count)]
    for member in found:
        consent_event(app, member, at=consent_at)  # type: ignore[arg-type]
    return found


def test_a_cell_with_exactly_k_members_is_published_and_k_minus_1_is_suppressed(
        client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=3)
    crowd = members(app, 5)
    for member in crowd[:3]:
        pings(app, member, [(at(MONDAY, 9, 10), X9), (at(MONDAY, 9, 40), X9)])
    for member in crowd[3:]:
        pings(app, member, [(at(MONDAY, 9, 15), Y9)])
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    assert release_rows(client, modeller, manifest["release_id"]) == [(HOUR9, X9, 9, 3)]
    # Y9's two contributions went to P8 and P7, still below 3 there, and were suppressed.
    assert manifest["stats"] == {"rows": 1, "generalised_rows": 0, "suppressed_contributions": 2,
                                 "pings_considered": 8}


def test_small_cells_move_to_the_parent_and_count_only_among_themselves(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2)
    crowd = members(app, 4)
    pings(app, crowd[0], [(at(MONDAY, 9, 5), X9)])
    pings(app, crowd[1], [(at(MONDAY, 9, 6), X9)])
    pings(app, crowd[2], [(at(MONDAY, 9, 7), Y9)])
    pings(app, crowd[3], [(at(MONDAY, 9, 8), Z9)])
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    # X9 has 2 (published); Y9 and Z9 have 1 each and meet in P8 with 2: P8 is NOT 4.
    assert release_rows(client, modeller, manifest["release_id"]) == [(HOUR9, X9, 9, 2), (HOUR9, P8, 8, 2)]
    assert manifest["stats"]["generalised_rows"] == 1
    assert manifest["stats"]["suppressed_contributions"] == 0


def test_a_parent_minus_its_children_cannot_reveal_a_lone_member(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2)
    crowd = members(app, 3)
    pings(app, crowd[0], [(at(MONDAY, 9, 5), X9)])
    pings(app, crowd[1], [(at(MONDAY, 9, 6), X9)])
    remote = h3.latlng_to_cell(53.6475, -3.0053, 9)  # Southport: a lone member far from the others
    pings(app, crowd[2], [(at(MONDAY, 9, 7), Y9), (at(MONDAY, 10, 7), remote)])
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    rows = release_rows(client, modeller, manifest["release_id"])
    assert rows == [(HOUR9, X9, 9, 2)]
    assert not any(cell in {P8, P7} for _, cell, _, _ in rows)  # 3 - 2 would have exposed the lone member
    assert manifest["stats"]["suppressed_contributions"] == 2


def test_consent_is_judged_per_ping_and_at_build_time(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2)
    steady = members(app, 2)
    late = make_member(app, name="Late joiner")
    consent_event(app, late, at=at(MONDAY, 11, 30))
    other_purpose = make_member(app, name="Health only")
    consent_event(app, other_purpose, at=BEFORE, purpose="public-health")
    withdrawn = make_member(app, name="Withdrew")
    consent_event(app, withdrawn, at=BEFORE)
    consent_event(app, withdrawn, at=at(MONDAY, 20), given=False)
    erased = make_member(app, name="Erased")
    consent_event(app, erased, at=BEFORE)
    nobody = make_member(app, name="Never consented")

    pings(app, steady[0], [(at(MONDAY, 9, 0), X9), (at(MONDAY, 12, 0), X9)])
    # Hour 9: only steady[0] would count; the others are each excluded for a different reason.
    for member in (late, other_purpose, withdrawn, erased, nobody):
        pings(app, member, [(at(MONDAY, 9, 30), X9)])
    # Hour 12: the late joiner's consent now covers the ping, so X9 has 2 members.
    pings(app, late, [(at(MONDAY, 12, 30), X9)])
    # Hour 10: steady[1] with members who must not count, so 1 < k.
    pings(app, steady[1], [(at(MONDAY, 10, 0), Y9)])
    for member in (withdrawn, erased):
        pings(app, member, [(at(MONDAY, 10, 5), Y9)])
    erase(app, erased)

    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    assert release_rows(client, modeller, manifest["release_id"]) == [("2026-11-02T12:00:00Z", X9, 9, 2)]
    assert manifest["stats"]["pings_considered"] == 4  # steady 2+1, late 1 (its 9:30 ping predates consent)


def test_consent_given_again_after_a_withdrawal_covers_only_its_windows(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2)
    anchor = members(app, 1)[0]
    flaky = make_member(app, name="Flaky")
    consent_event(app, flaky, at=BEFORE)
    consent_event(app, flaky, at=at(MONDAY, 10), given=False)
    consent_event(app, flaky, at=at(MONDAY, 14))
    for hour in (9, 11, 15):
        pings(app, anchor, [(at(MONDAY, hour, 1), X9)])
        pings(app, flaky, [(at(MONDAY, hour, 2), X9)])
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    assert release_rows(client, modeller, manifest["release_id"]) == [
        (HOUR9, X9, 9, 2), ("2026-11-02T15:00:00Z", X9, 9, 2)]


def test_contribution_bounding_keeps_the_busiest_cells_ties_to_the_smaller_id(
        client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2, time_bucket="day")
    pair = members(app, 2)
    cells = [h3.latlng_to_cell(LIVERPOOL[0] + 0.05 * n, LIVERPOOL[1], 9) for n in range(5)]
    tie_low, tie_high = sorted(cells[2:4], key=h3.str_to_int)
    plan = {cells[0]: 5, cells[1]: 4, tie_low: 3, tie_high: 3, cells[4]: 1}
    for member in pair:
        pings(app, member, [(at(MONDAY, 8, minute), cell) for cell, count in plan.items()
                            for minute in range(count)])
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    rows = release_rows(client, modeller, manifest["release_id"])
    expected = sorted([cells[0], cells[1], tie_low], key=h3.str_to_int)
    assert rows == [("2026-11-02T00:00:00Z", cell, 9, 2) for cell in expected]
    usage = client.get("/v1/me/usage", headers=pair[0].caller.headers).json()["items"]
    assert [item["contribution_units"] for item in usage] == [3]


def test_an_hour_counts_a_member_in_one_cell_only(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2)
    pair = members(app, 2)
    for member in pair:
        pings(app, member, [(at(MONDAY, 9, 1), Y9), (at(MONDAY, 9, 2), X9), (at(MONDAY, 9, 3), X9)])
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    assert release_rows(client, modeller, manifest["release_id"]) == [(HOUR9, X9, 9, 2)]
    assert manifest["stats"]["suppressed_contributions"] == 0


def test_the_region_keeps_only_cells_whose_centre_is_inside(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    lat, lng = h3.cell_to_latlng(X9)
    box = {"bbox": [lng - 0.01, lat - 0.01, lng + 0.01, lat + 0.01]}
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2, region=box)
    pair = members(app, 2)
    far = h3.latlng_to_cell(53.6475, -3.0053, 9)
    for member in pair:
        pings(app, member, [(at(MONDAY, 9, 1), X9), (at(MONDAY, 10, 1), far)])
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    assert release_rows(client, modeller, manifest["release_id"]) == [(HOUR9, X9, 9, 2)]
    assert manifest["stats"]["pings_considered"] == 2


def test_pings_outside_the_period_do_not_count(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2)
    pair = members(app, 2)
    for member in pair:
        pings(app, member, [(at(MONDAY, 0, 0), X9), (at(NEXT_DAY, 0, 0), X9),
                            (at(MONDAY) - timedelta(milliseconds=1), X9)])
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    assert release_rows(client, modeller, manifest["release_id"]) == [("2026-11-02T00:00:00Z", X9, 9, 2)]


def test_the_worked_example_of_docs_privacy_model(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=3)
    a, b, c, d, e = members(app, 5)
    f = make_member(app, name="F")
    consent_event(app, f, at=at(MONDAY, 9, 30))
    g, h = members(app, 2)
    consent_event(app, g, at=at(MONDAY) - timedelta(days=1), given=False)
    w9 = h3.latlng_to_cell(53.6475, -3.0053, 9)
    pings(app, a, [(at(MONDAY, 9, 1), X9), (at(MONDAY, 9, 2), X9), (at(MONDAY, 9, 3), Y9)])
    for member in (b, c, g, h):
        pings(app, member, [(at(MONDAY, 9, 4), X9)])
    pings(app, d, [(at(MONDAY, 9, 5), Y9), (at(MONDAY, 9, 6), Y9)])
    pings(app, e, [(at(MONDAY, 9, 7), Z9)])
    pings(app, f, [(at(MONDAY, 9, 10), Z9), (at(MONDAY, 9, 40), w9)])
    erase(app, h)
    manifest = built_release(client, app, modeller, licence, start=MONDAY, end=NEXT_DAY)
    assert release_rows(client, modeller, manifest["release_id"]) == [(HOUR9, X9, 9, 3)]
    assert manifest["stats"] == {"rows": 1, "generalised_rows": 0, "suppressed_contributions": 3,
                                 "pings_considered": 9}
    units = [client.get("/v1/me/usage", headers=m.caller.headers).json()["items"] for m in (a, b, c, d, e, f)]
    assert [[item["contribution_units"] for item in found] for found in units] == [[1], [1], [1], [], [], []]
