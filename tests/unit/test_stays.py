"""Stay and trip detection (pure): hand-built routines give exactly the expected stays and trips; the
scan agrees with a deliberately naive pure-Python oracle on random tracks and ignores input order;
stays and trips across midnight are found when sealing either day through ``read_window``."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import h3
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.dp import Kind, exposure
from aggregation.kanon import parent_cell
from aggregation.periods import DAY_MS, HOUR_MS, TimeBucket
from aggregation.stays import (
    PING_SCHEMA,
    STAY_LOOKAHEAD_MS,
    STAY_LOOKBACK_MS,
    cell_centre_vectors,
    chord_threshold,
    detect_stays,
    detect_stays_at_points,
    detect_trips,
    read_window,
    stay_contributions,
    trip_contributions,
)

MINUTE = 60_000
DAY = datetime(2026, 11, 4, tzinfo=UTC)  # a Wednesday
DAY_START = int(DAY.timestamp() * 1000)
HOME = (53.4084, -2.9916)
WORK = (53.4420, -3.0030)  # Liverpool docks, ~3.8 km north of HOME
FRIEND = (53.3934, -3.0148)  # Birkenhead


def cell(point: tuple[float, float]) -> int:
    value: int = h3.str_to_int(h3.latlng_to_cell(point[0], point[1], 10))
    return value


def at(minutes: float) -> int:
    return DAY_START + round(minutes * MINUTE)


def dwell(member: int, point: tuple[float, float], start_min: float, end_min: float,
          every_min: float = 10) -> list[tuple[int, int, int]]:
    """Pings at one place every ``every_min`` minutes from start to end (both included)."""
    count = math.floor((end_min - start_min) / every_min + 1e-9)
    return [(member, at(start_min + i * every_min), cell(point)) for i in range(count + 1)]


def travel(member: int, origin: tuple[float, float], destination: tuple[float, float],
           start_min: float, end_min: float) -> list[tuple[int, int, int]]:
    """Pings each minute strictly between two places, none within 300 m of either end."""
    minutes = round(end_min - start_min)
    rows = []
    for i in range(minutes + 1):
        f = 0.1 + 0.8 * i / max(1, minutes)
        point = (origin[0] + (destination[0] - origin[0]) * f, origin[1] + (destination[1] - origin[1]) * f)
        rows.append((member, at(start_min + i), cell(point)))
    return rows


def frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PING_SCHEMA, orient="row")


def stay_rows(stays: pl.DataFrame) -> list[tuple[int, int, int, int, int]]:
    return [tuple(row) for row in stays.iter_rows()]


def commuter(member: int = 1) -> list[tuple[int, int, int]]:
    """Home 06:00-08:00, drive, work 08:40-17:00, drive, home 17:40-23:00."""
    return (dwell(member, HOME, 6 * 60, 8 * 60) + travel(member, HOME, WORK, 8 * 60 + 5, 8 * 60 + 35)
            + dwell(member, WORK, 8 * 60 + 40, 17 * 60) + travel(member, WORK, HOME, 17 * 60 + 5, 17 * 60 + 35)
            + dwell(member, HOME, 17 * 60 + 40, 23 * 60))


# --- hand-built routines -------------------------------------------------------------------------

def test_home_trip_work_back_gives_exactly_the_expected_stays_and_trips() -> None:
    stays = detect_stays(frame(commuter()))
    assert stay_rows(stays) == [
        (1, at(6 * 60), at(8 * 60), cell(HOME), 13),
        (1, at(8 * 60 + 40), at(17 * 60), cell(WORK), 51),
        (1, at(17 * 60 + 40), at(23 * 60), cell(HOME), 33),
    ]
    for resolution in (7, 9, 10):
        trips = detect_trips(stays, resolution=resolution)
        home, work = parent_cell(cell(HOME), resolution), parent_cell(cell(WORK), resolution)
        assert [tuple(row) for row in trips.iter_rows()] == [
            (1, at(8 * 60), at(8 * 60 + 40), home, work),
            (1, at(17 * 60), at(17 * 60 + 40), work, home),
        ]


def test_two_members_are_scanned_independently() -> None:
    both = commuter(1) + [(2, ts, c) for _, ts, c in dwell(2, FRIEND, 0, 60)]
    stays = detect_stays(frame(both))
    assert stays.filter(pl.col("member_no") == 2).rows() == [(2, at(0), at(60), cell(FRIEND), 7)]
    assert stays.filter(pl.col("member_no") == 1).equals(detect_stays(frame(commuter(1))))


def test_a_member_who_never_stays_fifteen_minutes_gives_no_stay_and_no_trip() -> None:
    restless = (dwell(3, HOME, 0, 14, every_min=1) + travel(3, HOME, WORK, 20, 40)
                + dwell(3, WORK, 45, 59, every_min=7) + travel(3, WORK, FRIEND, 65, 90)
                + dwell(3, FRIEND, 95, 109.9, every_min=0.5))
    stays = detect_stays(frame(restless))
    assert stays.height == 0
    assert detect_trips(stays, resolution=9).height == 0


def test_min_minutes_is_inclusive_and_configurable() -> None:
    exactly = frame(dwell(4, HOME, 0, 15, every_min=5))
    assert detect_stays(exactly).get_column("pings").to_list() == [4]
    assert detect_stays(exactly, min_minutes=15.001).height == 0
    assert detect_stays(exactly, min_minutes=0).height == 1  # one run: all pings in one cell


def _offset(point: tuple[float, float], north_m: float) -> tuple[float, float]:
    return point[0] + north_m / 111_194.9, point[1]


def test_radius_is_measured_from_the_runs_first_ping() -> None:
    # Points drift north 80 m per ping: each is near its predecessor, but the run ends once the
    # first ping is more than 200 m away (at the 4th ping, 240 m).
    rows = [(5, at(i * 6), 0) for i in range(6)]
    points = [_offset(HOME, 80 * i) for i in range(6)]
    pings = frame(rows).with_columns(pl.Series("lat", [p[0] for p in points]),
                                     pl.Series("lng", [p[1] for p in points]))
    stays = detect_stays_at_points(pings, radius_m=200)
    # The scan: run from ping 0 covers 0-2 (12 min: too short), from 1 covers 1-3 (12 min), from 2
    # covers 2-4, from 3 covers 3-5: none spans 15 min.
    assert stays.height == 0
    stays = detect_stays_at_points(pings, radius_m=250)
    assert stays.select("start_ms", "end_ms", "pings").rows() == [(at(0), at(18), 4)]
    assert detect_stays_at_points(pings, radius_m=239.9, min_minutes=12).select("pings").rows() == [(3,), (3,)]


def test_the_stay_cell_is_the_most_pinged_cell_ties_to_the_smaller_id() -> None:
    here = cell(HOME)
    neighbour = sorted(h3.str_to_int(c) for c in h3.grid_ring(h3.int_to_str(here), 1))[0]
    other = sorted(h3.str_to_int(c) for c in h3.grid_ring(h3.int_to_str(here), 1))[-1]
    small, large = sorted((here, neighbour))
    for first, second in ((small, large), (large, small)):
        rows = [(6, at(m), c) for m, c in ((0, first), (5, second), (10, first), (15, second))]
        assert detect_stays(frame(rows)).get_column("cell").to_list() == [small]
    rows = [(6, at(m), c) for m, c in ((0, large), (5, small), (10, large), (15, other), (20, large))]
    assert detect_stays(frame(rows)).get_column("cell").to_list() == [large]


def test_stays_in_one_coarse_cell_make_no_trip_at_that_resolution() -> None:
    near = _offset(HOME, 600)  # another res-10 cell, the same res-7 cell
    assert parent_cell(cell(near), 7) == parent_cell(cell(HOME), 7)
    stays = detect_stays(frame(dwell(7, HOME, 0, 60) + dwell(7, near, 70, 130)))
    assert stays.height == 2
    assert detect_trips(stays, resolution=7).height == 0
    assert detect_trips(stays, resolution=10).select("origin", "destination").rows() == [(cell(HOME), cell(near))]


def test_empty_and_invalid_input() -> None:
    assert detect_stays(frame([])).height == 0
    assert detect_trips(detect_stays(frame([])), resolution=9).height == 0
    with pytest.raises(ValueError):
        detect_stays(frame(commuter()), radius_m=-1)
    with pytest.raises(ValueError):
        detect_trips(detect_stays(frame(commuter())), resolution=11)


# --- buckets ---------------------------------------------------------------------------------------

def test_a_stay_counts_in_every_bucket_it_overlaps_weighted_by_time() -> None:
    stays = detect_stays(frame(dwell(8, HOME, 30, 150)))  # 00:30 - 02:30
    rows = stay_contributions(stays, bucket_ms=HOUR_MS, resolution=9, start_ms=DAY_START,
                              end_ms=DAY_START + DAY_MS)
    home9 = parent_cell(cell(HOME), 9)
    assert rows.rows() == [(DAY_START, 8, home9, 30 * MINUTE), (DAY_START + HOUR_MS, 8, home9, HOUR_MS),
                           (DAY_START + 2 * HOUR_MS, 8, home9, 30 * MINUTE + 1)]
    only_second = stay_contributions(stays, bucket_ms=HOUR_MS, resolution=9,
                                     start_ms=DAY_START + HOUR_MS, end_ms=DAY_START + 2 * HOUR_MS)
    assert only_second.get_column("bucket").to_list() == [DAY_START + HOUR_MS]


def test_week_buckets_start_on_monday() -> None:
    sunday_night = int(datetime(2026, 11, 8, 23, 0, tzinfo=UTC).timestamp() * 1000)
    rows = [(9, sunday_night + i * 10 * MINUTE, cell(HOME)) for i in range(13)]  # 23:00 - 01:00
    stays = detect_stays(frame(rows))
    mondays = [int(datetime(2026, 11, d, tzinfo=UTC).timestamp() * 1000) for d in (2, 9)]
    weeks = stay_contributions(stays, bucket_ms=TimeBucket.WEEK.length_ms, resolution=8, start_ms=mondays[0],
                               end_ms=mondays[0] + 3 * TimeBucket.WEEK.length_ms)
    assert weeks.get_column("bucket").to_list() == mondays


def test_trip_contributions_count_trips_by_departure_bucket() -> None:
    twice = (dwell(10, HOME, 0, 30) + travel(10, HOME, WORK, 31, 40) + dwell(10, WORK, 41, 70)
             + travel(10, WORK, HOME, 71, 80) + dwell(10, HOME, 81, 110) + travel(10, HOME, WORK, 111, 120)
             + dwell(10, WORK, 121, 150))
    trips = detect_trips(detect_stays(frame(twice)), resolution=9)
    assert trips.height == 3
    rows = trip_contributions(trips, bucket_ms=DAY_MS, start_ms=DAY_START, end_ms=DAY_START + DAY_MS)
    home9, work9 = parent_cell(cell(HOME), 9), parent_cell(cell(WORK), 9)
    assert rows.rows() == [(DAY_START, 10, home9, work9, 2), (DAY_START, 10, work9, home9, 1)]


# --- across midnight -------------------------------------------------------------------------------

def _seal_day(pings: pl.DataFrame, day_start: int, resolution: int = 9) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What the sealer does for one daily bucket: read the window, detect, keep the day's buckets."""
    read_from, read_to = read_window(day_start, day_start + DAY_MS)
    window = pings.filter(pl.col("ts_ms") >= read_from, pl.col("ts_ms") < read_to)
    stays = detect_stays(window)
    kept = {"bucket_ms": DAY_MS, "start_ms": day_start, "end_ms": day_start + DAY_MS}
    return (stay_contributions(stays, resolution=resolution, **kept),
            trip_contributions(detect_trips(stays, resolution=resolution), **kept))


def _late_evening() -> pl.DataFrame:
    """Member 11: work until 18:00, home 18:30 - 07:30 next day, then work.
    Member 12: at a friend's 21:00 - 23:50, drives 23:55 - 00:15, home from 00:20."""
    evening, next_morning = 24 * 60, 48 * 60
    rows = (dwell(11, WORK, 9 * 60, 18 * 60) + travel(11, WORK, HOME, 18 * 60 + 5, 18 * 60 + 25)
            + dwell(11, HOME, 18 * 60 + 30, evening + 7 * 60 + 30, every_min=20)
            + travel(11, HOME, WORK, evening + 7 * 60 + 35, evening + 7 * 60 + 55)
            + dwell(11, WORK, evening + 8 * 60, evening + 17 * 60, every_min=30))
    rows += (dwell(12, FRIEND, 21 * 60, 23 * 60 + 50) + travel(12, FRIEND, HOME, 23 * 60 + 55, evening + 15)
             + dwell(12, HOME, evening + 20, evening + 8 * 60, every_min=30)
             + dwell(12, HOME, evening + 8 * 60 + 40, next_morning, every_min=45))
    return frame(rows)


def test_a_stay_across_midnight_counts_in_both_days() -> None:
    pings = _late_evening()
    first_day, second_day = _seal_day(pings, DAY_START), _seal_day(pings, DAY_START + DAY_MS)
    home9 = parent_cell(cell(HOME), 9)
    overnight = pl.col("member_no") == 11
    assert first_day[0].filter(overnight).select("cell").to_series().to_list() == sorted(
        [home9, parent_cell(cell(WORK), 9)])
    assert home9 in second_day[0].filter(overnight).get_column("cell").to_list()
    whole = detect_stays(pings).filter(overnight, pl.col("cell") == cell(HOME))
    assert whole.rows() == [(11, at(18 * 60 + 30), at(24 * 60 + 7 * 60 + 30), cell(HOME), 40)]
    # Both days' windows see that stay whole (same start, end, cell and pings).
    for day_start in (DAY_START, DAY_START + DAY_MS):
        read_from, read_to = read_window(day_start, day_start + DAY_MS)
        seen = detect_stays(pings.filter(pl.col("ts_ms") >= read_from, pl.col("ts_ms") < read_to))
        assert seen.filter(overnight, pl.col("cell") == cell(HOME)).equals(whole)


def test_a_trip_departing_at_2350_and_arriving_at_0020_is_in_the_day_it_departs() -> None:
    pings = _late_evening()
    late = pl.col("member_no") == 12
    first_day, second_day = _seal_day(pings, DAY_START), _seal_day(pings, DAY_START + DAY_MS)
    friend9, home9 = parent_cell(cell(FRIEND), 9), parent_cell(cell(HOME), 9)
    assert first_day[1].filter(late).rows() == [(DAY_START, 12, friend9, home9, 1)]
    assert second_day[1].filter(late).height == 0
    assert first_day[0].filter(late).get_column("cell").to_list() == [friend9]  # arrives after midnight
    assert second_day[0].filter(late).get_column("cell").to_list() == [home9]
    # Without the look-ahead the destination stay is unseen and the trip would be lost.
    cut = pings.filter(pl.col("ts_ms") < DAY_START + DAY_MS)
    assert detect_trips(detect_stays(cut), resolution=9).filter(late).height == 0


def test_read_window_extends_both_ways_by_less_than_the_day_the_accounting_allows() -> None:
    assert read_window(DAY_START, DAY_START + DAY_MS) == (DAY_START - STAY_LOOKBACK_MS,
                                                         DAY_START + DAY_MS + STAY_LOOKAHEAD_MS)
    # Overnight stays (evening to morning) are whole in both days' windows ...
    assert STAY_LOOKBACK_MS >= 12 * HOUR_MS and STAY_LOOKAHEAD_MS >= 12 * HOUR_MS
    # ... and a member-day reaches only the windows of the day before and after (dp.exposure).
    assert STAY_LOOKBACK_MS <= DAY_MS and STAY_LOOKAHEAD_MS <= DAY_MS
    assert exposure(Kind.STAYS, TimeBucket.DAY).tables == 3 and exposure(Kind.OD, TimeBucket.DAY).tables == 3


# --- against a naive oracle, and order independence ---------------------------------------------

_CENTRE = h3.latlng_to_cell(HOME[0], HOME[1], 10)
POOL = sorted(h3.str_to_int(c) for c in h3.grid_disk(_CENTRE, 3))  # 37 cells, 0-~450 m apart


def naive_stays(rows: list[tuple[int, int, int]], radius_m: float, min_minutes: float) -> list[tuple[int, ...]]:
    """The greedy scan as written in the contract, one ping at a time, in plain Python."""
    ordered = sorted(rows)
    x, y, z = cell_centre_vectors(pl.Series([c for _, _, c in ordered], dtype=pl.Int64))
    limit = chord_threshold(radius_m)
    min_ms = math.ceil(min_minutes * MINUTE)
    out: list[tuple[int, ...]] = []
    i = 0
    while i < len(ordered):
        j = i + 1
        while (j < len(ordered) and ordered[j][0] == ordered[i][0]
               and (x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2 + (z[i] - z[j]) ** 2 <= limit):
            j += 1
        if ordered[j - 1][1] - ordered[i][1] >= min_ms:
            counts: dict[int, int] = {}
            for _, _, c in ordered[i:j]:
                counts[c] = counts.get(c, 0) + 1
            best = min(counts, key=lambda c: (-counts[c], c))
            out.append((ordered[i][0], ordered[i][1], ordered[j - 1][1], best, j - i))
            i = j
        else:
            i += 1
    return out


NEIGHBOURS = {c: sorted(h3.str_to_int(n) for n in h3.grid_disk(h3.int_to_str(c), 1)) for c in POOL}
scattered = st.lists(st.tuples(st.integers(1, 3), st.integers(0, 240).map(lambda m: DAY_START + m * MINUTE),
                               st.sampled_from(POOL)), max_size=60)


@st.composite
def visit(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    """A member lingering near one cell: pings every few minutes in it or a neighbouring cell."""
    member, base = draw(st.integers(1, 3)), draw(st.sampled_from(POOL))
    start, step = draw(st.integers(0, 300)), draw(st.integers(0, 8))
    jitter = draw(st.lists(st.sampled_from(NEIGHBOURS[base]), min_size=1, max_size=12))
    return [(member, DAY_START + (start + i * step) * MINUTE, c) for i, c in enumerate(jitter)]


tracks = st.tuples(scattered, st.lists(visit(), max_size=8)).map(
    lambda parts: parts[0] + [ping for v in parts[1] for ping in v])


@settings(max_examples=300, deadline=None)
@given(rows=tracks, radius=st.sampled_from([0.0, 100.0, 200.0, 300.0]), minutes=st.sampled_from([0, 5, 15, 30]))
def test_scan_equals_the_naive_oracle(rows: list[tuple[int, int, int]], radius: float, minutes: int) -> None:
    assert stay_rows(detect_stays(frame(rows), radius_m=radius, min_minutes=minutes)) == naive_stays(
        rows, radius, minutes)


@settings(max_examples=150, deadline=None)
@given(rows=tracks, seed=st.integers(0, 2**32 - 1))
def test_order_of_pings_does_not_matter(rows: list[tuple[int, int, int]], seed: int) -> None:
    shuffled = list(rows)
    np.random.default_rng(seed).shuffle(shuffled)
    stays = detect_stays(frame(rows))
    assert detect_stays(frame(shuffled)).equals(stays)
    trips = detect_trips(stays, resolution=9)
    assert detect_trips(detect_stays(frame(shuffled)), resolution=9).equals(trips)
    # Stays never overlap and hold every ping at most once.
    for member in stays.partition_by("member_no"):
        starts, ends = member.get_column("start_ms").to_list(), member.get_column("end_ms").to_list()
        assert all(end <= start for end, start in zip(ends, starts[1:], strict=False))
    assert stays.get_column("pings").sum() <= len(rows)


def test_long_dense_stays_are_linear_not_quadratic() -> None:
    # A member pinging every second for two days at home: one stay of 172,800 pings (the extension
    # gathers doubling windows, so this is quick; a quadratic scan would not finish).
    rows = frame([(13, DAY_START + i * 1000, cell(HOME)) for i in range(172_800)])
    stays = detect_stays(rows)
    assert stays.rows() == [(13, DAY_START, DAY_START + 172_799_000, cell(HOME), 172_800)]

