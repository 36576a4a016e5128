"""The sealing maths of aggregation/sealing.py, by property: with a huge budget the rows equal a naive
pure-Python oracle (h3's own cell_to_parent), each contribution lands in exactly one published row or is
suppressed, and one member-day changes at most the declared counts by at most 1 at every level (the
sensitivity the accounting in aggregation/dp.py relies on). At the default budget: every published count
is >= tau and every published row holds contributions."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable

import h3
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.dp import Kind, NoisePlan, exact_plan, plan_noise
from aggregation.kanon import parent_cell_expr
from aggregation.periods import DAY_MS, HOUR_MS, TimeBucket
from aggregation.sealing import bound_lines, generalise, seal_cells, seal_pairs

Key = tuple[int, ...]
Line = tuple[int, int, Key, int]  # bucket, member, key, weight


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
CELL_LINE = st.tuples(st.integers(0, 2), st.integers(1, 12), st.sampled_from(POOL), st.integers(1, 5))
PAIR_LINE = st.tuples(st.integers(0, 2), st.integers(1, 12), st.sampled_from(POOL), st.sampled_from(POOL),
                      st.integers(1, 5))


def _parent(cell: int, level: int) -> int:
    return int(h3.str_to_int(h3.cell_to_parent(h3.int_to_str(cell), level)))


def oracle(lines: Iterable[Line], *, resolution: int, coarsest: int, bound: int, k: int) -> list[tuple[int, ...]]:
    """Design's algorithm, naively: sum, bound (most weight, then smaller key), count, move up, suppress."""
    weights: dict[tuple[int, int, Key], int] = defaultdict(int)
    for bucket, member, key, weight in lines:
        weights[(member, bucket, key)] += weight
    owned: dict[tuple[int, int], list[tuple[int, Key]]] = defaultdict(list)
    for (member, bucket, key), weight in weights.items():
        owned[(member, bucket)].append((-weight, key))
    pending = {(member, bucket, key) for (member, bucket), found in owned.items()
               for _, key in sorted(found)[:bound]}
    rows: list[tuple[int, ...]] = []
    for level in range(resolution, coarsest - 1, -1):
        if level < resolution:
            pending = {(m, b, tuple(_parent(c, level) for c in key)) for m, b, key in pending}
        counts = Counter((b, key) for _, b, key in pending)
        published = {found: n for found, n in counts.items() if n >= k}
        rows += [(b, *key, level, n) for (b, key), n in published.items()]
        pending = {p for p in pending if (p[1], p[2]) not in published}
    width = len(rows[0]) - 3 if rows else 1  # bucket, key..., level, members
    return sorted(rows, key=lambda row: (row[0], -row[width + 1], *row[1:width + 1]))


def _cells_frame(lines: Iterable[tuple[int, int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(list(lines), schema=dict.fromkeys(["bucket", "member_no", "cell", "weight"], pl.Int64),
                        orient="row")


def _pairs_frame(lines: Iterable[tuple[int, int, int, int, int]]) -> pl.DataFrame:
    columns = ["bucket", "member_no", "origin", "destination", "weight"]
    return pl.DataFrame(list(lines), schema=dict.fromkeys(columns, pl.Int64), orient="row")


def _exact(kind: Kind, bucket: TimeBucket, k: int) -> NoisePlan:
    return exact_plan(kind=kind, time_bucket=bucket, resolution=9, coarsest_resolution=7, k_floor=k)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(CELL_LINE, max_size=80), k=st.integers(1, 4),
       bucket=st.sampled_from(list(TimeBucket)))
def test_cells_with_a_huge_budget_equal_the_oracle(lines: list[tuple[int, int, int, int]], k: int,
                                                   bucket: TimeBucket) -> None:
    plan = _exact(Kind.PRESENCE, bucket, k)
    assert plan.tau == max(k, 2)  # tau = 1 would publish a lone member half the time, whatever epsilon
    k = plan.tau
    sealed = seal_cells(_cells_frame(lines), plan=plan)
    expected = oracle([(b, m, (c,), w) for b, m, c, w in lines], resolution=9, coarsest=7,
                      bound=bucket.cells_per_member, k=k)
    assert [tuple(row) for row in sealed.rows.iter_rows()] == expected
    assert sorted(sealed.contributors.iter_rows()) == sorted({(m, b) for b, m, _, _ in lines})


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(PAIR_LINE, max_size=80), k=st.integers(1, 4),
       bucket=st.sampled_from(list(TimeBucket)))
def test_pairs_with_a_huge_budget_equal_the_oracle(lines: list[tuple[int, int, int, int, int]], k: int,
                                                   bucket: TimeBucket) -> None:
    plan = _exact(Kind.OD, bucket, k)
    k = plan.tau
    sealed = seal_pairs(_pairs_frame(lines), plan=plan)
    expected = oracle([(b, m, (o, d), w) for b, m, o, d, w in lines], resolution=9, coarsest=7,
                      bound=bucket.cells_per_member, k=k)
    assert [tuple(row) for row in sealed.rows.iter_rows()] == expected


def _first_rows(contributions: pl.DataFrame, rows: pl.DataFrame, keys: list[str],
                plan: NoisePlan) -> pl.DataFrame:
    """Per contribution, the finest published row that is its ancestor (null: suppressed)."""
    found = contributions.with_columns(pl.lit(None, dtype=pl.Int64).alias("level"))
    for level in range(plan.resolution, plan.coarsest_resolution - 1, -1):
        at_level = rows.filter(pl.col("resolution") == level).select("bucket", *keys).with_columns(
            pl.lit(level, dtype=pl.Int64).alias("hit"))
        ancestors = [parent_cell_expr(pl.col(key), level).alias(f"{key}_up") for key in keys]
        probe = found.with_columns(ancestors)
        probe = probe.join(at_level.rename({key: f"{key}_up" for key in keys}),
                           on=["bucket", *[f"{key}_up" for key in keys]], how="left")
        found = probe.with_columns(pl.coalesce("level", "hit").alias("level")).select(*found.columns)
    return found


def _assert_each_contribution_counted_once(lines: pl.DataFrame, rows: pl.DataFrame, keys: list[str],
                                           plan: NoisePlan, *, exact: bool) -> None:
    contributions = bound_lines(lines, keys=keys, plan=plan)
    first = _first_rows(contributions, rows, keys, plan)
    for row in rows.iter_rows(named=True):
        level = row["resolution"]
        counted = first.filter(pl.col("level") == level, pl.col("bucket") == row["bucket"],
                               *[parent_cell_expr(pl.col(key), level) == row[key] for key in keys])
        members = counted.get_column("member_no").n_unique()
        assert members >= 1  # no row without contributions of its own
        if exact:
            assert members == row["members"]


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(PAIR_LINE, max_size=80), k=st.integers(1, 4),
       bucket=st.sampled_from(list(TimeBucket)))
def test_od_generalisation_counts_each_trip_in_one_published_pair_or_suppresses_it(
        lines: list[tuple[int, int, int, int, int]], k: int, bucket: TimeBucket) -> None:
    plan = _exact(Kind.OD, bucket, k)
    frame = _pairs_frame(lines)
    rows = seal_pairs(frame, plan=plan).rows
    _assert_each_contribution_counted_once(frame, rows, ["origin", "destination"], plan, exact=True)


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(CELL_LINE, max_size=80), k=st.integers(1, 4))
def test_cell_generalisation_counts_each_contribution_once(lines: list[tuple[int, int, int, int]],
                                                           k: int) -> None:
    plan = _exact(Kind.STAYS, TimeBucket.DAY, k)
    frame = _cells_frame(lines)
    rows = seal_cells(frame, plan=plan).rows
    _assert_each_contribution_counted_once(frame, rows, ["cell"], plan, exact=True)


@settings(max_examples=30, deadline=None)
@given(lines=st.lists(CELL_LINE, max_size=60), order=st.randoms(use_true_random=False))
def test_exact_rows_do_not_depend_on_line_order(lines: list[tuple[int, int, int, int]],
                                                order: random.Random) -> None:
    plan = _exact(Kind.PRESENCE, TimeBucket.DAY, 2)
    shuffled = list(lines)
    order.shuffle(shuffled)
    assert seal_cells(_cells_frame(lines), plan=plan).rows.equals(seal_cells(_cells_frame(shuffled), plan=plan).rows)


# --- Default budget --------------------------------------------------------------------------------

def _default(kind: Kind, bucket: TimeBucket) -> NoisePlan:
    return plan_noise(kind=kind, time_bucket=bucket, resolution=9, coarsest_resolution=7,
                      epsilon_per_day=0.5, delta=1e-7, k_floor=10)


def _crowd(plan: NoisePlan, *, members: int) -> pl.DataFrame:
    """``members`` members spread over the pool: a few crowded cells, many thin ones."""
    return _cells_frame((0, member, POOL[(member * member) % len(POOL)] if member % 3 else POOL[0], 1)
                        for member in range(members))


@pytest.mark.parametrize("bucket", list(TimeBucket))
def test_default_budget_publishes_only_counts_at_or_above_tau(bucket: TimeBucket) -> None:
    plan = _default(Kind.PRESENCE, bucket)
    frame = _crowd(plan, members=6 * plan.tau)
    rows = seal_cells(frame, plan=plan).rows
    assert rows.height >= 1  # POOL[0] holds a third of the crowd: far above tau
    assert min(rows.get_column("members").to_list()) >= plan.tau
    _assert_each_contribution_counted_once(frame, rows, ["cell"], plan, exact=False)


def test_default_budget_pairs_publish_only_counts_at_or_above_tau() -> None:
    plan = _default(Kind.OD, TimeBucket.DAY)
    frame = _pairs_frame((0, member, POOL[member % 3], POOL[5 + member % 2], 1) for member in range(4 * plan.tau))
    rows = seal_pairs(frame, plan=plan).rows
    assert rows.height >= 1
    assert min(rows.get_column("members").to_list()) >= plan.tau
    _assert_each_contribution_counted_once(frame, rows, ["origin", "destination"], plan, exact=False)


def test_a_lone_member_is_never_published_at_the_default_budget() -> None:
    plan = _default(Kind.PRESENCE, TimeBucket.HOUR)
    frame = _cells_frame((bucket * HOUR_MS, bucket, POOL[bucket % len(POOL)], 1) for bucket in range(2000))
    assert seal_cells(frame, plan=plan).rows.height == 0


# --- Sensitivity: one member-day, every level, every transcript ------------------------------------

MEMBER_DAY_LINE = st.tuples(st.integers(1, 6), st.integers(0, 6), st.integers(0, 23), st.sampled_from(POOL),
                            st.integers(1, 5))  # member, day, hour, cell, pings


def _bucket_of(day: int, hour: int, bucket: TimeBucket) -> int:
    moment = day * DAY_MS + hour * HOUR_MS
    return moment - moment % bucket.length_ms  # day 0 is a Monday-aligned start for this test


def _level_counts(frame: pl.DataFrame, keys: list[str], plan: NoisePlan, seed: int) -> dict[tuple[int, int], dict[Key, int]]:
    """Exact counts per (bucket, level) when the published keys are an arbitrary fixed transcript."""
    seen: dict[tuple[int, int], dict[Key, int]] = defaultdict(dict)

    def decide(level: int, counts: pl.DataFrame) -> pl.DataFrame:
        for row in counts.iter_rows(named=True):
            seen[(row["bucket"], level)][tuple(row[key] for key in keys)] = row["members"]
        chosen = pl.struct("bucket", *keys).hash(seed + level) % 3 == 0
        return counts.filter(chosen)

    generalise(bound_lines(frame, keys=keys, plan=plan), keys=keys, plan=plan, decide=decide)
    return seen


def _assert_member_day_reach(with_day: pl.DataFrame, without_day: pl.DataFrame, keys: list[str],
                             plan: NoisePlan, seed: int) -> set[int]:
    before = _level_counts(with_day, keys, plan, seed)
    after = _level_counts(without_day, keys, plan, seed)
    changed_tables: set[int] = set()
    for table_level in before.keys() | after.keys():
        old, new = before.get(table_level, {}), after.get(table_level, {})
        diffs = [abs(old.get(key, 0) - new.get(key, 0)) for key in old.keys() | new.keys()]
        assert max(diffs, default=0) <= 1
        assert sum(diffs) <= plan.squared_sensitivity  # each change is 1: L2^2 = number of changes
        own_before = [key for key in old if key not in new]
        own_after = [key for key in new if key not in old]
        assert len(own_before) <= plan.contribution_bound and len(own_after) <= plan.contribution_bound
        if plan.squared_sensitivity == plan.contribution_bound:  # add/remove: the day leaves the table
            assert not own_after
        if any(diffs):
            changed_tables.add(table_level[0])
    assert len(changed_tables) <= plan.tables_per_day
    return changed_tables


@settings(max_examples=80, deadline=None)
@given(lines=st.lists(MEMBER_DAY_LINE, max_size=70), victim=st.integers(1, 6), day=st.integers(0, 6),
       bucket=st.sampled_from(list(TimeBucket)), seed=st.integers(0, 2**16))
def test_one_member_day_changes_at_most_the_declared_counts_by_one(
        lines: list[tuple[int, int, int, int, int]], victim: int, day: int, bucket: TimeBucket, seed: int) -> None:
    plan = _default(Kind.PRESENCE, bucket)
    rows = [(_bucket_of(d, h, bucket), m, c, w, d) for m, d, h, c, w in lines]
    with_day = pl.DataFrame(rows, schema=["bucket", "member_no", "cell", "weight", "day"], orient="row")
    without_day = with_day.filter(~((pl.col("member_no") == victim) & (pl.col("day") == day)))
    changed = _assert_member_day_reach(with_day, without_day, ["cell"], plan, seed)
    day_start, day_end = day * DAY_MS, (day + 1) * DAY_MS
    assert all(start < day_end and day_start < start + bucket.length_ms for start in changed)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(PAIR_LINE, max_size=60), victim=st.integers(1, 12), table=st.integers(0, 2),
       replacement=st.lists(PAIR_LINE, max_size=8), bucket=st.sampled_from(list(TimeBucket)),
       seed=st.integers(0, 2**16))
def test_rewriting_a_members_pairs_in_a_table_changes_at_most_twice_the_bound(
        lines: list[tuple[int, int, int, int, int]], victim: int, table: int,
        replacement: list[tuple[int, int, int, int, int]], bucket: TimeBucket, seed: int) -> None:
    """stays/od: a member-day can rewrite the member's trips in a bucket whose read window it overlaps."""
    plan = _default(Kind.OD, bucket)
    frame = _pairs_frame(lines)
    mine = (pl.col("member_no") == victim) & (pl.col("bucket") == table)
    rewritten = pl.concat([frame.filter(~mine), _pairs_frame((table, victim, o, d, w) for _, _, o, d, w in replacement)])
    assert _assert_member_day_reach(frame, rewritten, ["origin", "destination"], plan, seed) <= {table}


def test_a_weekly_table_really_needs_twice_the_bound() -> None:
    """The member's heavy day holds five cells, the rest of the week five others: removing the day swaps
    all five, ten counts change (so L2 sensitivity sqrt(2L), not sqrt(L))."""
    plan = _default(Kind.PRESENCE, TimeBucket.WEEK)
    heavy = [(0, 1, POOL[i], 9, 0) for i in range(5)]
    light = [(0, 1, POOL[10 + i], 1, 3) for i in range(5)]
    others = [(0, m, POOL[i], 1, 3) for m in range(2, 4) for i in range(15)]
    with_day = pl.DataFrame(heavy + light + others, schema=["bucket", "member_no", "cell", "weight", "day"],
                            orient="row")
    before = _level_counts(with_day, ["cell"], plan, seed=1)
    after = _level_counts(with_day.filter(pl.col("day") != 0), ["cell"], plan, seed=1)
    finest = (0, plan.resolution)
    changes = sum(abs(before[finest].get(k, 0) - after[finest].get(k, 0)) for k in before[finest].keys() | after[finest].keys())
    assert changes == 2 * plan.contribution_bound == plan.squared_sensitivity


def test_lines_must_be_cells_at_the_plans_resolution() -> None:
    plan = _exact(Kind.PRESENCE, TimeBucket.DAY, 2)
    coarse = _parent(POOL[0], 8)
    with pytest.raises(ValueError, match="resolution 9"):
        seal_cells(_cells_frame([(0, 1, coarse, 1)]), plan=plan)
    with pytest.raises(ValueError, match="missing columns"):
        seal_cells(pl.DataFrame({"bucket": [0], "member_no": [1], "cell": [POOL[0]]}), plan=plan)
    with pytest.raises(ValueError, match="seal_pairs"):
        seal_cells(_cells_frame([(0, 1, POOL[0], 1)]), plan=_exact(Kind.OD, TimeBucket.DAY, 2))


def test_empty_input_seals_to_empty_typed_frames() -> None:
    sealed = seal_pairs(_pairs_frame([]), plan=_exact(Kind.OD, TimeBucket.HOUR, 2))
    assert sealed.rows.height == 0 and sealed.contributors.height == 0
    assert sealed.rows.columns == ["bucket", "origin", "destination", "resolution", "members"]
