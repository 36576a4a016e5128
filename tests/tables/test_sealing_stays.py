"""Sealing stays and od families from stored pings (huge budget, so sealed rows equal exact counts and
tau equals the k floor of 2): hand-built routines, midnight, bounding and generalisation of pairs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import col

from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.tables.models import SealedPair
from tests.support.releases import Member, at, consent_event, make_member, pings, siblings
from tests.support.tables import MONDAY, approve, cell_rows, contributions, dataset, modeller, seal

BEFORE = at(MONDAY - timedelta(days=7))
TUESDAY = MONDAY + timedelta(days=1)
DAY, DAY2 = "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"
HOME = (53.4084, -2.9916)
WORK = (53.4420, -3.0030)
FRIEND = (53.3934, -3.0148)
PairRow = tuple[str, str, str, int, int]


def cell10(point: tuple[float, float]) -> str:
    return str(h3.latlng_to_cell(point[0], point[1], 10))


def parent(point: tuple[float, float], resolution: int = 9) -> str:
    return str(h3.cell_to_parent(cell10(point), resolution))


def dwell(start: datetime, end: datetime, point: tuple[float, float], every_min: int = 10) -> list[tuple[datetime, str]]:
    steps = int((end - start) / timedelta(minutes=every_min))
    return [(start + i * timedelta(minutes=every_min), cell10(point)) for i in range(steps + 1)]


def drive(start: datetime, end: datetime, origin: tuple[float, float],
          destination: tuple[float, float]) -> list[tuple[datetime, str]]:
    """A ping each minute on the way, none within 10% of the distance of either end."""
    minutes = int((end - start) / timedelta(minutes=1))
    out = []
    for i in range(minutes + 1):
        f = 0.1 + 0.8 * i / max(1, minutes)
        out.append((start + timedelta(minutes=i), cell10((origin[0] + (destination[0] - origin[0]) * f,
                                                          origin[1] + (destination[1] - origin[1]) * f))))
    return out


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11",
                    privacy_budget_per_day=1e12, family_epsilon_per_day=1e9)


def crowd(app: FastAPI, count: int, name: str) -> list[Member]:
    found = [make_member(app, name=f"{name} {n}") for n in range(count)]
    for member in found:
        consent_event(app, member, at=BEFORE)
    return found


def pair_rows(app: FastAPI, family_id: str) -> list[PairRow]:
    with session_scope(app.state.engine) as session:
        rows = session.execute(sa.select(col(SealedPair.bucket_start), col(SealedPair.origin),
                                         col(SealedPair.destination), col(SealedPair.resolution),
                                         col(SealedPair.members))
                               .where(col(SealedPair.family_id) == family_id)).all()
    found = [(start.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"), h3.int_to_str(o), h3.int_to_str(d), r, m)
             for start, o, d, r, m in rows]
    return sorted(found, key=lambda row: (row[0], -row[3], h3.str_to_int(row[1]), h3.str_to_int(row[2])))


def families(client: TestClient, app: FastAPI, days: int = 1, resolution: int = 9) -> tuple[str, str]:
    """A stays family and an od family (daily), each opened by an approved licence."""
    who = modeller(app)
    stays = approve(client, app, who, dataset=dataset(days=days, resolution=resolution, kind="stays"))
    od = approve(client, app, who, dataset=dataset(days=days, resolution=resolution, kind="od"))
    assert stays["family_id"] != od["family_id"]
    return stays["family_id"], od["family_id"]


def by_cell(*rows: tuple[str, str, int, int]) -> list[tuple[str, str, int, int]]:
    return sorted(rows, key=lambda row: (row[0], -row[2], h3.str_to_int(row[1])))


def test_home_trip_work_back_seals_exactly_the_expected_stays_and_od_rows(client: TestClient, app: FastAPI) -> None:
    stays_family, od_family = families(client, app)
    commuters = crowd(app, 3, "Commuter")
    routine = (dwell(at(MONDAY, 6), at(MONDAY, 8), HOME) + drive(at(MONDAY, 8, 5), at(MONDAY, 8, 35), HOME, WORK)
               + dwell(at(MONDAY, 8, 40), at(MONDAY, 17), WORK)
               + drive(at(MONDAY, 17, 5), at(MONDAY, 17, 35), WORK, HOME) + dwell(at(MONDAY, 17, 40), at(MONDAY, 23), HOME))
    for member in commuters:
        pings(app, member, routine)
    # Never still for 15 minutes: pings every 4 minutes, each a kilometre on (2 members, above k).
    restless = crowd(app, 2, "Restless")
    for member in restless:
        pings(app, member, [(at(MONDAY, 9) + timedelta(minutes=4 * i), cell10((53.30 + 0.009 * i, -2.90)))
                            for i in range(30)])
    seal(app)
    home9, work9 = parent(HOME), parent(WORK)
    assert cell_rows(app, stays_family) == by_cell((DAY, home9, 9, 3), (DAY, work9, 9, 3))
    assert pair_rows(app, od_family) == sorted([(DAY, home9, work9, 9, 3), (DAY, work9, home9, 9, 3)],
                                               key=lambda r: h3.str_to_int(r[1]))
    for family in (stays_family, od_family):
        assert contributions(app, family) == {(m.account_id, "2026-11-02"): 1 for m in commuters}


def test_across_midnight_when_the_day_before_is_already_sealed(client: TestClient, app: FastAPI) -> None:
    stays_family, od_family = families(client, app, days=2)
    overnight, late = crowd(app, 2, "Overnight"), crowd(app, 2, "Late")
    for member in overnight:  # home 18:30 Monday - 07:30 Tuesday, then work
        pings(app, member, dwell(at(MONDAY, 18, 30), at(TUESDAY, 7, 30), HOME, every_min=20)
              + drive(at(TUESDAY, 7, 35), at(TUESDAY, 7, 55), HOME, WORK) + dwell(at(TUESDAY, 8), at(TUESDAY, 12), WORK))
    for member in late:  # at a friend's until 23:50, drives 23:55 - 00:15, home from 00:20
        pings(app, member, dwell(at(MONDAY, 21), at(MONDAY, 23, 50), FRIEND)
              + drive(at(MONDAY, 23, 55), at(TUESDAY, 0, 15), FRIEND, HOME)
              + dwell(at(TUESDAY, 0, 20), at(TUESDAY, 8), HOME, every_min=30))
    seal(app, now=at(MONDAY + timedelta(days=3)))  # Monday only (Tuesday is not due yet)
    home9, work9, friend9 = parent(HOME), parent(WORK), parent(FRIEND)
    monday_stays = by_cell((DAY, home9, 9, 2), (DAY, friend9, 9, 2))
    assert cell_rows(app, stays_family) == monday_stays
    assert pair_rows(app, od_family) == [(DAY, friend9, home9, 9, 2)]  # departs 23:50, arrives 00:20
    seal(app, now=at(MONDAY + timedelta(days=4)))  # now Tuesday, Monday untouched
    assert cell_rows(app, stays_family) == monday_stays + by_cell((DAY2, home9, 9, 4), (DAY2, work9, 9, 2))
    assert pair_rows(app, od_family) == [(DAY, friend9, home9, 9, 2), (DAY2, home9, work9, 9, 2)]


PLACES = [(53.4084, -2.9916), (53.4539, -2.7375), (53.6458, -3.0050), (53.3618, -2.7337)]


def test_od_bounding_keeps_each_members_three_pairs_per_day(client: TestClient, app: FastAPI) -> None:
    _, od_family = families(client, app)
    home, *away = PLACES
    visits = [home, away[0], home, away[1], home, away[2]]  # five trips, each pair once
    track: list[tuple[datetime, str]] = []
    for index, place in enumerate(visits):
        start = at(MONDAY, 6 + 2 * index)
        track += dwell(start, start + timedelta(minutes=40), place)
        if index + 1 < len(visits):
            track += drive(start + timedelta(minutes=45), start + timedelta(minutes=110), place, visits[index + 1])
    for member in crowd(app, 2, "Errands"):
        pings(app, member, track)
    seal(app)
    made = [(parent(a), parent(b)) for a, b in itertools.pairwise(visits)]
    kept = sorted(made, key=lambda pair: (h3.str_to_int(pair[0]), h3.str_to_int(pair[1])))[:3]  # ties: smaller ids
    assert pair_rows(app, od_family) == [(DAY, o, d, 9, 2) for o, d in kept]


def test_od_generalisation_moves_both_ends_to_their_parents_together(client: TestClient, app: FastAPI) -> None:
    _, od_family = families(client, app)
    origins = siblings(parent(HOME))[:3]
    destinations = siblings(parent((53.6458, -3.0050)))[:3]  # Southport
    a, b, c, d = crowd(app, 4, "Traveller")
    for member, index in ((a, 0), (b, 0), (c, 1), (d, 2)):
        start, end = h3.cell_to_latlng(origins[index]), h3.cell_to_latlng(destinations[index])
        pings(app, member, dwell(at(MONDAY, 8), at(MONDAY, 9), start)
              + drive(at(MONDAY, 9, 5), at(MONDAY, 9, 45), start, end) + dwell(at(MONDAY, 9, 50), at(MONDAY, 11), end))
    seal(app)
    # a and b share a published res-9 pair; c's and d's pairs (1 each) meet at the parents' pair.
    assert pair_rows(app, od_family) == [
        (DAY, origins[0], destinations[0], 9, 2),
        (DAY, str(h3.cell_to_parent(origins[0], 8)), str(h3.cell_to_parent(destinations[0], 8)), 8, 2)]
