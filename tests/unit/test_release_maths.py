"""Property-based tests of the pure release maths (no database): the invariants of design.md's algorithm
over random populations, and agreement with a deliberately naive pure-Python oracle that uses the h3
library's own ``cell_to_parent`` (so the bit arithmetic is checked too)."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import h3
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.consent_windows import ConsentChange, ceil_ms, consent_windows
from aggregation.kanon import COUNT_SCHEMA, aggregate, parent_cell, parent_cell_expr, parent_cell_sql
from aggregation.periods import Period, TimeBucket, is_aligned

Key = tuple[int, int, int]  # member, bucket, cell (int)


def _pool() -> list[int]:
    """28 resolution-9 cells under 4 resolution-8 parents under 2 resolution-7 cells."""
    first = h3.latlng_to_cell(53.4084, -2.9916, 7)
    second = sorted(h3.grid_ring(first, 1))[0]
    cells: list[int] = []
    for seven in (first, second):
        for eight in sorted(h3.cell_to_children(seven, 8))[:2]:
            cells += [h3.str_to_int(c) for c in sorted(h3.cell_to_children(eight, 9))]
    return cells


POOL = _pool()
populations = st.dictionaries(
    keys=st.tuples(st.integers(1, 9), st.integers(0, 2), st.sampled_from(POOL)),
    values=st.integers(1, 6), max_size=70)


def _frame(counts: dict[Key, int]) -> pl.DataFrame:
    return pl.DataFrame([(m, b * 3_600_000, c, n) for (m, b, c), n in counts.items()],
                        schema=COUNT_SCHEMA, orient="row")


def _oracle(counts: dict[Key, int], *, k: int, cells_per_member: int) -> tuple[
        list[tuple[int, int, int, int]], dict[int, int], int]:
    by_member_bucket: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for (member, bucket, cell), pings in counts.items():
        by_member_bucket[(member, bucket)].append((-pings, cell))
    pending = [(member, bucket, cell) for (member, bucket), ranked in by_member_bucket.items()
               for _, cell in sorted(ranked)[:cells_per_member]]
    rows: list[tuple[int, int, int, int]] = []
    counted: dict[int, set[tuple[int, int, int]]] = defaultdict(set)
    for level in (9, 8, 7):
        if level < 9:
            pending = [(m, b, h3.str_to_int(h3.cell_to_parent(h3.int_to_str(c), level))) for m, b, c in pending]
        members: dict[tuple[int, int], set[int]] = defaultdict(set)
        for member, bucket, cell in pending:
            members[(bucket, cell)].add(member)
        big = {key for key, found in members.items() if len(found) >= k}
        rows += [(bucket * 3_600_000, cell, level, len(members[(bucket, cell)])) for bucket, cell in big]
        for member, bucket, cell in pending:
            if (bucket, cell) in big:
                counted[member].add((bucket, level, cell))
        pending = [(m, b, c) for m, b, c in pending if (b, c) not in big]
    rows.sort(key=lambda row: (row[0], -row[2], row[1]))
    return rows, {member: len(found) for member, found in counted.items()}, len(pending)


@settings(max_examples=250, deadline=None)
@given(population=populations, k=st.integers(1, 4), cells_per_member=st.integers(1, 3),
       batch_rows=st.sampled_from([1, 7, 500_000]))
def test_the_maths_agrees_with_the_naive_oracle(population: dict[Key, int], k: int, cells_per_member: int,
                                                batch_rows: int) -> None:
    result = aggregate(_frame(population), resolution=9, k=k, cells_per_member=cells_per_member,
                       batch_rows=batch_rows)
    rows, units, suppressed = _oracle(population, k=k, cells_per_member=cells_per_member)
    assert list(result.rows.iter_rows()) == rows
    assert dict(result.units.iter_rows()) == units
    assert result.suppressed_contributions == suppressed


@settings(max_examples=250, deadline=None)
@given(population=populations, k=st.integers(2, 4), cells_per_member=st.integers(1, 3),
       seed=st.integers(0, 1000))
def test_the_invariants_hold_for_random_populations(population: dict[Key, int], k: int, cells_per_member: int,
                                                    seed: int) -> None:
    result = aggregate(_frame(population), resolution=9, k=k, cells_per_member=cells_per_member,
                       with_assignments=True)
    rows = list(result.rows.iter_rows(named=True))
    # Every published number counts at least k distinct members.
    assert all(row["members"] >= k for row in rows)
    # Rows are unique and sorted (bucket, resolution descending, cell).
    keys = [(row["bucket"], -row["resolution"], row["cell"]) for row in rows]
    assert keys == sorted(set(keys))
    # Bounding: at most L contributions per (member, bucket), each the busiest (ties: smaller cell).
    assignments = list(result.assignments.iter_rows(named=True))
    per_member_bucket: dict[tuple[int, int], list[int]] = defaultdict(list)
    for line in assignments:
        per_member_bucket[(line["member_no"], line["bucket"] // 3_600_000)].append(line["origin"])
    for (member, bucket), kept in per_member_bucket.items():
        candidates = sorted((-n, c) for (m, b, c), n in population.items() if (m, b) == (member, bucket))
        assert sorted(kept) == sorted(c for _, c in candidates[:cells_per_member])
    # Each contribution is counted in exactly one published row (at its own cell or an ancestor) or
    # suppressed; a row's members are exactly the distinct members assigned to it.
    assert len({(a["member_no"], a["bucket"], a["origin"]) for a in assignments}) == len(assignments)
    members_of: dict[tuple[int, int, int], set[int]] = defaultdict(set)
    for line in assignments:
        if line["resolution"] is None:
            continue
        assert line["cell"] == parent_cell(line["origin"], line["resolution"])
        members_of[(line["bucket"], line["resolution"], line["cell"])].add(line["member_no"])
    assert {key: len(found) for key, found in members_of.items()} == {
        (row["bucket"], row["resolution"], row["cell"]): row["members"] for row in rows}
    assert result.suppressed_contributions == sum(1 for a in assignments if a["resolution"] is None)
    # Units: the number of published rows that count the member.
    units: dict[int, int] = defaultdict(int)
    for bucket, resolution, cell in members_of:
        for member in members_of[(bucket, resolution, cell)]:
            units[member] += 1
    assert dict(result.units.iter_rows()) == dict(units)
    # The output depends on the set of lines, not their order.
    shuffled = list(population.items())
    random.Random(seed).shuffle(shuffled)
    again = aggregate(_frame(dict(shuffled)), resolution=9, k=k, cells_per_member=cells_per_member)
    assert again.rows.equals(result.rows) and again.units.equals(result.units)


@settings(max_examples=200, deadline=None)
@given(lat=st.floats(-85, 85), lng=st.floats(-180, 180), resolution=st.integers(7, 10))
def test_parent_bit_arithmetic_matches_h3(lat: float, lng: float, resolution: int) -> None:
    cell = h3.latlng_to_cell(lat, lng, 10)
    expected = h3.str_to_int(h3.cell_to_parent(cell, resolution))
    assert parent_cell(h3.str_to_int(cell), resolution) == expected
    frame = pl.DataFrame({"cell": [h3.str_to_int(cell)]})
    assert frame.select(parent_cell_expr(pl.col("cell"), resolution)).item() == expected
    assert "|" in parent_cell_sql("cell", resolution)


BASE = datetime(2026, 11, 2, tzinfo=UTC)
events = st.lists(st.tuples(st.integers(0, 48 * 3_600_000_000), st.booleans()), max_size=6)


@settings(max_examples=300, deadline=None)
@given(log=events, ping_offsets=st.lists(st.integers(-3_600_000, 49 * 3_600_000), max_size=20))
def test_consent_windows_match_the_log_semantics(log: list[tuple[int, bool]], ping_offsets: list[int]) -> None:
    changes = [ConsentChange(at=BASE + timedelta(microseconds=micros), state="given" if gave else "withdrawn")
               for micros, gave in log]
    start_ms = ceil_ms(BASE)
    end_ms = start_ms + 48 * 3_600_000
    windows = consent_windows(changes, start_ms=start_ms, end_ms=end_ms)
    ordered = sorted(changes, key=lambda c: (c.at, c.state == "withdrawn"))
    still_given = bool(ordered) and ordered[-1].state == "given"
    for offset in ping_offsets:
        ping_ms = start_ms + offset
        moment = BASE + timedelta(milliseconds=offset)
        before = [c for c in ordered if c.at <= moment]
        expected = (still_given and bool(before) and before[-1].state == "given"
                    and start_ms <= ping_ms < end_ms)
        assert any(w.start_ms <= ping_ms < w.end_ms for w in windows) == expected
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(windows))


def test_weeks_start_on_monday_and_periods_count_whole_buckets() -> None:
    monday = datetime(2026, 11, 2).date()
    assert is_aligned(monday, TimeBucket.WEEK)
    assert not is_aligned(monday + timedelta(days=1), TimeBucket.WEEK)
    assert is_aligned(monday + timedelta(days=1), TimeBucket.DAY)
    period = Period(start=monday, end=monday + timedelta(days=14))
    assert period.bucket_count(TimeBucket.WEEK) == 2 and period.bucket_count(TimeBucket.HOUR) == 336
    assert [TimeBucket(b).cells_per_member for b in ("hour", "day", "week")] == [1, 3, 5]


def test_an_empty_population_gives_an_empty_table() -> None:
    result = aggregate(pl.DataFrame(schema=COUNT_SCHEMA), resolution=9, k=2, cells_per_member=1)
    assert result.rows.height == 0 and result.units.height == 0 and result.suppressed_contributions == 0
