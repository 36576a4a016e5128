"""The k-anonymous release maths (pure: Polars and H3 bit arithmetic; no database, no web framework).

Input: per (member, bucket, cell at the licence's resolution r) the number of eligible pings.

1. Contribution bounding: per (member, bucket) keep at most L cells, most pings first, ties to the
   smaller cell id. Each kept (member, bucket, cell) is one *contribution*.
2. Count distinct members per (bucket, cell); cells with at least k members are published.
3. Contributions in cells below k move to the parent cell (r-1) and are counted there among
   themselves only; repeat down to the coarsest resolution; what is still below k is suppressed.
4. Rows are sorted (bucket, resolution descending, cell); a member's contribution units are the number
   of published rows that count them.

Invariants (property-tested): every published row has ``members >= k``; within a bucket every
contribution is counted in exactly one published row (at its own cell or an ancestor) or suppressed;
no member counts in more than L cells at resolution r per bucket; a published parent row counts only
contributions that no child row published, so a parent minus its children reveals nobody; the output
depends only on the input set, never on its order.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

FINEST_RESOLUTION = 10
COARSEST_RESOLUTION = 7
_RESOLUTION_FIELD = 0xF << 52
BATCH_ROWS = 500_000

COUNT_SCHEMA = {"member_no": pl.Int64, "bucket": pl.Int64, "cell": pl.Int64, "pings": pl.Int64}
CONTRIBUTION_SCHEMA = {"member_no": pl.Int64, "bucket": pl.Int64, "cell": pl.Int64}
ROW_SCHEMA = {"bucket": pl.Int64, "cell": pl.Int64, "resolution": pl.Int64, "members": pl.Int64}


def _parent_masks(resolution: int) -> tuple[int, int]:
    if not 0 <= resolution <= 15:
        raise ValueError(f"H3 resolution out of range: {resolution}")
    unused_digits = (1 << (3 * (15 - resolution))) - 1
    return unused_digits, resolution << 52


def parent_cell(cell: int, resolution: int) -> int:
    """``h3.cell_to_parent`` on the integer form, for a cell at ``resolution`` or finer."""
    unused_digits, resolution_bits = _parent_masks(resolution)
    return ((cell | unused_digits) & ~_RESOLUTION_FIELD) | resolution_bits


def parent_cell_expr(cell: pl.Expr, resolution: int) -> pl.Expr:
    """The vectorised :func:`parent_cell`: set the resolution field and mark finer digits unused."""
    unused_digits, resolution_bits = _parent_masks(resolution)
    return ((cell | unused_digits) & ~_RESOLUTION_FIELD) | resolution_bits


def parent_cell_sql(column: str, resolution: int) -> str:
    """The same bit arithmetic as SQL (PostgreSQL and SQLite both have 64-bit ``|`` and ``&``)."""
    unused_digits, resolution_bits = _parent_masks(resolution)
    return f"((({column}) | {unused_digits}) & {~_RESOLUTION_FIELD}) | {resolution_bits}"


@dataclass(frozen=True)
class Aggregate:
    """The outcome of the maths for one release.

    ``rows``: bucket, cell, resolution, members (sorted). ``units``: member_no, units (sorted, units > 0).
    ``assignments`` (only when asked for): one line per contribution: member_no, bucket, origin (its
    cell at resolution r), and the resolution and cell of the row that counts it (null when suppressed).
    """

    rows: pl.DataFrame
    units: pl.DataFrame
    assignments: pl.DataFrame
    contributions: int
    suppressed_contributions: int


def sum_counts(counts: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Merge duplicate (member, bucket, cell) lines of ``counts`` by adding their pings."""
    return (counts.lazy().group_by("member_no", "bucket", "cell").agg(pl.col("pings").sum())
            .collect())


def bound_contributions(counts: pl.DataFrame, *, cells_per_member: int) -> pl.DataFrame:
    """Per (member, bucket) the at most ``cells_per_member`` cells with most pings, ties to the smaller cell.

    ``counts`` must hold each (member_no, bucket, cell) once (see :func:`sum_counts`).
    """
    if cells_per_member < 1:
        raise ValueError("cells_per_member must be at least 1")
    keys = ["member_no", "bucket"]
    if cells_per_member == 1:  # no sort needed: the smallest of each (member, bucket)'s busiest cells
        return (counts.lazy().filter(pl.col("pings") == pl.col("pings").max().over(keys))
                .group_by(keys).agg(pl.col("cell").min()).select(list(CONTRIBUTION_SCHEMA)).collect())
    ranked = counts.lazy().sort([*keys, "pings", "cell"], descending=[False, False, True, False])
    kept = ranked.group_by(keys, maintain_order=True).head(cells_per_member)
    return kept.select(list(CONTRIBUTION_SCHEMA)).collect()


def generalise(contributions: pl.DataFrame, *, resolution: int, k: int,
               coarsest_resolution: int = COARSEST_RESOLUTION, distinct_members: bool = True,
               with_assignments: bool = False) -> Aggregate:
    """Steps 2-4 over bounded contributions at ``resolution``.

    ``distinct_members=False`` is a fast path, valid only when each (member, bucket) has one
    contribution (hour buckets): then no member can reach one cell twice. ``with_assignments`` keeps
    the per-contribution outcome (for tests and audits; it costs memory on large builds).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if not coarsest_resolution <= resolution <= FINEST_RESOLUTION:
        raise ValueError(f"resolution must be in {coarsest_resolution}..{FINEST_RESOLUTION}")
    keys = ["bucket", "cell"]
    origin = [pl.col("cell").alias("origin")] if with_assignments else []
    pending = contributions.select("member_no", "bucket", *origin, "cell")
    published: list[pl.DataFrame] = []
    assigned: list[pl.DataFrame] = []
    counted: list[pl.DataFrame] = []
    for level in range(resolution, coarsest_resolution - 1, -1):
        if level < resolution:
            pending = pending.with_columns(parent_cell_expr(pl.col("cell"), level).alias("cell"))
        members = pending.select("member_no", *keys)
        if distinct_members:
            members = members.unique()
        counts = members.group_by(keys).agg(pl.len().cast(pl.Int64).alias("members"))
        published.append(counts.filter(pl.col("members") >= k)
                         .with_columns(pl.lit(level, dtype=pl.Int64).alias("resolution")))
        judged = pending.join(counts, on=keys, how="left")
        hit = judged.filter(pl.col("members") >= k).drop("members")
        counted.append(hit.select("member_no", *keys).unique() if distinct_members else hit.select("member_no"))
        if with_assignments:
            assigned.append(hit.with_columns(pl.lit(level, dtype=pl.Int64).alias("resolution")))
        pending = judged.filter(pl.col("members") < k).drop("members")
    assignments = pl.DataFrame()
    if with_assignments:
        suppressed = pending.with_columns(pl.lit(None, dtype=pl.Int64).alias("resolution"),
                                          pl.lit(None, dtype=pl.Int64).alias("cell"))
        column_order = ["member_no", "bucket", "origin", "resolution", "cell"]
        assignments = pl.concat([frame.select(column_order) for frame in [*assigned, suppressed]])
    rows = (pl.concat([frame.select(list(ROW_SCHEMA)) for frame in published])
            .sort(["bucket", "resolution", "cell"], descending=[False, True, False]))
    units = (pl.concat([frame.select("member_no") for frame in counted])
             .group_by("member_no").agg(pl.len().cast(pl.Int64).alias("units")).sort("member_no"))
    return Aggregate(rows=rows, units=units, assignments=assignments,
                     contributions=contributions.height, suppressed_contributions=pending.height)


def _aggregate_once(counts: pl.DataFrame, *, resolution: int, k: int, cells_per_member: int,
                    coarsest_resolution: int, with_assignments: bool) -> Aggregate:
    contributions = bound_contributions(counts, cells_per_member=cells_per_member)
    return generalise(contributions, resolution=resolution, k=k, coarsest_resolution=coarsest_resolution,
                      distinct_members=cells_per_member > 1, with_assignments=with_assignments)


def _bucket_batches(counts: pl.DataFrame, batch_rows: int) -> list[pl.DataFrame]:
    """Whole buckets grouped into batches of about ``batch_rows`` lines."""
    batches: list[pl.DataFrame] = []
    current: list[pl.DataFrame] = []
    size = 0
    for part in counts.partition_by("bucket", maintain_order=False):
        current.append(part)
        size += part.height
        if size >= batch_rows:
            batches.append(pl.concat(current))
            current, size = [], 0
    if current:
        batches.append(pl.concat(current))
    return batches


def aggregate(counts: pl.DataFrame, *, resolution: int, k: int, cells_per_member: int,
              coarsest_resolution: int = COARSEST_RESOLUTION, with_assignments: bool = False,
              batch_rows: int = BATCH_ROWS) -> Aggregate:
    """The whole release table from unique (member_no, bucket, cell, pings) lines at ``resolution``.

    Buckets are independent (bounding, counting and generalisation never look across buckets), so a
    large table is processed a batch of whole buckets at a time, which bounds the memory used.
    """
    def run(frame: pl.DataFrame) -> Aggregate:
        return _aggregate_once(frame, resolution=resolution, k=k, cells_per_member=cells_per_member,
                               coarsest_resolution=coarsest_resolution, with_assignments=with_assignments)

    if with_assignments or counts.height <= batch_rows:
        return run(counts)
    parts = [run(batch) for batch in _bucket_batches(counts, batch_rows)]
    rows = pl.concat([part.rows for part in parts]).sort(["bucket", "resolution", "cell"],
                                                         descending=[False, True, False])
    units = (pl.concat([part.units for part in parts]).group_by("member_no")
             .agg(pl.col("units").sum()).sort("member_no"))
    return Aggregate(rows=rows, units=units, assignments=pl.DataFrame(),
                     contributions=sum(part.contributions for part in parts),
                     suppressed_contributions=sum(part.suppressed_contributions for part in parts))


def empty_counts() -> pl.DataFrame:
    return pl.DataFrame(schema=COUNT_SCHEMA)
