"""The differencing attacks of issues 14 and 15, re-run against sealed tables with the smallest
populations that decide each case (docs/privacy-model.md, "Attacks and what closes them").

Each attack used to be the difference of two exact numbers. Same-family attacks (two bounding boxes,
k and k+1, a build after one more ping or a backlog upload) must now read identical numbers; the
strip itself holds no row below ``tau``; and what the public and licensee surfaces show about two
families whose inputs differ by one member (two purposes) must not differ at all. Withdrawal, erasure
and a single late ping between two licences' builds are in tests/tables/test_sealing.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import h3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from coop.accounts.models import MemberKey, Role
from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.tables import service
from tests.support.factories import Caller, make_account
from tests.support.membership import issue_codes, joined, sign_up
from tests.support.releases import Member, at, cell10, consent_event, erase, make_member, pings
from tests.support.tables import (
    MONDAY,
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
CENTRE10 = h3.cell_to_center_child(X9, 10)
BBox = tuple[float, float, float, float]


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    """A huge default budget (exact counts, tau = k floor) unless a request asks for a real epsilon."""
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11",
                    privacy_budget_per_day=1e12, family_epsilon_per_day=1e9)


def _crowd(app: FastAPI, count: int, *, prefix: str = "Resident", purposes: tuple[str, ...] = ("transport-planning",),
           ) -> list[Member]:
    found = [make_member(app, name=f"{prefix} {n}") for n in range(count)]
    for member in found:
        for purpose in purposes:
            consent_event(app, member, at=BEFORE, purpose=purpose)
    return found


def _eastern_child() -> str:
    """The res-10 child of X9 whose centre lies furthest east (the victim's cell, at the box's edge)."""
    return str(max(h3.cell_to_children(X9, 10), key=lambda cell: h3.cell_to_latlng(cell)[1]))


def _boxes() -> tuple[BBox, BBox]:
    """Box A holds all of X9; box B is A less a strip on its east side holding the victim's res-10
    centre (and no res-9 centre): the two differ by one res-10 cell strip, as in issue 14."""
    lats, lngs = zip(*h3.cell_to_boundary(X9), strict=True)
    wide: BBox = (min(lngs) - 1e-4, min(lats) - 1e-4, max(lngs) + 1e-4, max(lats) + 1e-4)
    victim_lng = h3.cell_to_latlng(_eastern_child())[1]
    assert victim_lng > h3.cell_to_latlng(X9)[1]
    narrow: BBox = (wide[0], wide[1], victim_lng - 1e-6, wide[3])
    return wide, narrow


def _cells(app: FastAPI, family_id: str, *, bbox: BBox | None = None, min_members: int = 0) -> list[tuple[Any, ...]]:
    with session_scope(app.state.engine) as session:
        frame = service.sealed_cells(session, family_id, start=at(MONDAY), end=at(MONDAY + timedelta(days=7)),
                                     bbox=bbox, min_members=min_members)
    return list(frame.iter_rows())


def test_two_bboxes_differing_by_a_strip_read_the_same_rows(client: TestClient, app: FastAPI) -> None:
    """Three members in X9's centre cell, the victim alone in X9's easternmost res-10 cell. Box A covers
    the victim's cell, box B stops short of it. Exact per-ping filtering gave A - B = 1 (the victim);
    whole cells selected by centre give both licences the same X9 row, counting the victim in both."""
    wide, narrow = _boxes()
    first = approve(client, app, modeller(app, "Box A"), dataset=dataset(region={"bbox": list(wide)}))
    second = approve(client, app, modeller(app, "Box B"), dataset=dataset(region={"bbox": list(narrow)}))
    assert first["family_id"] == second["family_id"]
    victim, *crowd = _crowd(app, 4)
    for member in crowd:
        pings(app, member, [(at(MONDAY, 9), CENTRE10)])
    pings(app, victim, [(at(MONDAY, 9), _eastern_child())])
    seal(app)
    in_wide, in_narrow = (_cells(app, first["family_id"], bbox=box, min_members=2) for box in (wide, narrow))
    assert in_wide == in_narrow
    assert [(h3.int_to_str(cell), resolution, members) for _, cell, resolution, members in in_wide] == [(X9, 9, 4)]


def test_the_strip_cell_alone_is_never_published_at_a_real_budget(client: TestClient, app: FastAPI) -> None:
    """At resolution 10 and epsilon 0.5 the strip is one cell holding one member: below tau (a lone
    member's cell passes with probability ~1e-9), so neither box sees it and every row is >= tau."""
    wide, narrow = _boxes()
    licence = approve(client, app, modeller(app), dataset=dataset(resolution=10, epsilon_per_day=0.5,
                                                                  region={"bbox": list(wide)}))
    victim, *crowd = _crowd(app, 4)
    for member in crowd:
        pings(app, member, [(at(MONDAY, 9), CENTRE10)])
    pings(app, victim, [(at(MONDAY, 9), _eastern_child())])
    seal(app)
    [table] = client.get("/v1/tables", headers=modeller(app, "Reader").headers).json()["items"]
    assert table["tau"] > 2 * 4  # far above the crowd: the margin for delta is what hides the strip
    strip = h3.str_to_int(_eastern_child())
    for box in (None, wide, narrow):
        rows = _cells(app, licence["family_id"], bbox=box)
        assert all(members >= table["tau"] for *_, members in rows)
        assert strip not in [cell for _, cell, _, _ in rows]


def test_k_and_k_plus_one_see_one_value_per_cell(client: TestClient, app: FastAPI) -> None:
    """k = 3 and k = 4 licences on one family: the k = 4 rows are the k = 3 rows with members >= 4,
    value for value, so no cell of exactly 3 members is learnt by subtraction."""
    low = approve(client, app, modeller(app, "k3"), dataset=dataset(k=3))
    high = approve(client, app, modeller(app, "k4"), dataset=dataset(k=4))
    assert low["family_id"] == high["family_id"]
    crowd = _crowd(app, 4)
    for member in crowd:
        pings(app, member, [(at(MONDAY, 9), CENTRE10)])
    for member in crowd[:3]:
        pings(app, member, [(at(TUESDAY, 9), CENTRE10)])
    seal(app)
    at_three = _cells(app, low["family_id"], min_members=3)
    at_four = _cells(app, high["family_id"], min_members=4)
    assert [row[-1] for row in at_three] == [4, 3]
    assert at_four == [row for row in at_three if row[-1] >= 4]


def test_a_backlog_a_withdrawal_and_an_erasure_after_sealing_change_no_hourly_row(
        client: TestClient, app: FastAPI) -> None:
    """An hourly family sealed, then: a phone uploads a day of backlog for every hour, newcomers
    upload pings for the sealed day, one member withdraws and one is erased. A second licence joins
    and the sealer runs again: every sealed hour and row is what it was."""
    first = approve(client, app, modeller(app, "First"), dataset=dataset(time_bucket="hour", days=1))
    crowd = _crowd(app, 5)
    for hour, member in enumerate(crowd):
        pings(app, member, [(at(MONDAY, 8), CENTRE10), (at(MONDAY, 9 + hour % 2), CENTRE10)])
    seal(app, now=at(MONDAY + timedelta(days=3)))  # Monday's hours
    family_id = first["family_id"]
    rows_before, buckets_before = cell_rows(app, family_id), sealed_buckets(app, family_id)
    assert len(buckets_before) == 24 and rows_before[0][2:] == (9, 5)

    pings(app, crowd[0], [(at(MONDAY, hour, 30), CENTRE10) for hour in range(24)])  # the backlog upload
    for newcomer in _crowd(app, 3, prefix="Newcomer"):
        pings(app, newcomer, [(at(MONDAY, hour), CENTRE10) for hour in range(24)])
    consent_event(app, crowd[1], at=at(TUESDAY, 12), given=False)
    erase(app, crowd[2])
    second = approve(client, app, modeller(app, "Second"), dataset=dataset(time_bucket="hour", days=1, k=3))
    assert second["family_id"] == family_id
    seal(app, now=at(MONDAY + timedelta(days=4)))  # and Tuesday's
    assert sealed_buckets(app, family_id)[:24] == buckets_before
    assert len(sealed_buckets(app, family_id)) == 48
    assert [row for row in cell_rows(app, family_id) if row[0] < "2026-11-03"] == rows_before


def _family_view(table: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in table.items() if key not in {"family_id", "purpose", "opened_at"}}


def test_two_purposes_differing_by_one_member_look_identical_beside_their_rows(
        client: TestClient, app: FastAPI) -> None:
    """The same spec for two purposes, at epsilon 0.5; the victim consents to transport only, so the
    two families' inputs differ by exactly the victim. Everything a licensee or the public reads about
    the families besides the noisy rows (tables, budget) is identical; the rows are all >= tau."""
    spec = dataset(resolution=8, epsilon_per_day=0.5)
    reader = modeller(app, "Both purposes")
    transport = approve(client, app, reader, dataset=spec)
    health = approve(client, app, reader, dataset=spec, purpose="public-health")
    assert transport["family_id"] != health["family_id"]
    crowd = _crowd(app, 6, purposes=("transport-planning", "public-health"))
    [victim] = _crowd(app, 1, prefix="Victim")
    for member in [*crowd, victim]:
        pings(app, member, [(at(MONDAY, 9), CENTRE10), (at(TUESDAY, 9), CENTRE10)])
    seal(app)
    tables = {table["purpose"]: table for table in client.get("/v1/tables", headers=reader.headers).json()["items"]}
    assert _family_view(tables["transport-planning"]) == _family_view(tables["public-health"])
    budget = client.get("/v1/privacy-budget").json()["families"]
    assert [_family_view(family) for family in budget] == [_family_view(budget[0])] * 2
    for family_id, table in ((transport["family_id"], tables["transport-planning"]),
                             (health["family_id"], tables["public-health"])):
        assert all(members >= table["tau"] for *_, members in _cells(app, family_id))
    # The victim's own page shows the one family that took their input (theirs to see, nobody else's).
    days: list[dict[str, Any]] = client.get("/v1/me/privacy-loss", params={"start": "2026-11-02", "end": "2026-11-04"},
                                            headers=victim.caller.headers).json()["days"]
    assert [day["epsilon"] for day in days] == [0.5, 0.5]



def _member(app: FastAPI, caller: Caller) -> Member:
    with session_scope(app.state.engine) as session:
        no = session.exec(select(MemberKey.no).where(MemberKey.account_id == caller.account_id)).one()
    assert no is not None
    return Member(caller=caller, no=no)


def test_sybils_beside_a_victim_make_nothing_publishable(client: TestClient, app: FastAPI) -> None:
    """Issue 15's sybil attack through sealing: a victim who joined with a code, and nine public
    sign-ups (unverified) with consent pinging in the victim's cell at the same time. Counted, the ten
    would pass the k floor; sealed, the cell holds one countable member and nothing is published, and
    only the victim's input is recorded (the sybils get no usage, dividend or privacy-loss trace)."""
    licence = approve(client, app, modeller(app), dataset=dataset(days=1))
    [code] = issue_codes(client, make_account(app, Role.ADMIN, name="Admin"), 1)
    victim = _member(app, joined(sign_up(client, code=code, display_name="Victim")))
    sybils = [_member(app, joined(sign_up(client, display_name=f"Sybil {n}"))) for n in range(9)]
    for member in [victim, *sybils]:
        consent_event(app, member, at=BEFORE)
        pings(app, member, [(at(MONDAY, 9), CENTRE10), (at(MONDAY, 9, 10), CENTRE10)])
    seal(app, now=at(MONDAY + timedelta(days=3)))
    assert sealed_buckets(app, licence["family_id"]) == ["2026-11-02T00:00:00Z"]
    assert cell_rows(app, licence["family_id"]) == []
    assert contributions(app, licence["family_id"]) == {(victim.account_id, "2026-11-02"): 1}
