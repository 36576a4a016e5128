"""Sealing one family's buckets: bounding, noisy counting, generalisation (pure: Polars and OpenDP).

Input lines: bucket, member_no, a key at ``plan.resolution`` (a cell; or an origin-destination pair of
cells), weight (pings, stay pings or trips); several lines per (member, bucket, key) are summed.

1. Bounding: per (member, bucket) keep at most L keys (``plan.contribution_bound``), most weight first,
   ties to the smaller key. Each kept (member, bucket, key) is a *contribution*.
2. Per level (plan.resolution down to plan.coarsest_resolution): count distinct members per
   (bucket, key), add discrete Gaussian noise to every count in ONE OpenDP call, publish the keys whose
   noisy count is >= tau (published members = that noisy integer). Contributions of unpublished keys move
   to the parent (od: both ends together) and are counted there among themselves, with fresh noise.
   Whatever is unpublished at the coarsest level is suppressed.

Invariants (tests/unit/test_sealing_maths.py): every published ``members >= plan.tau``; within a bucket
each contribution is counted in exactly one published row (its own key or an ancestor) or suppressed; a
member counts at most once per row; with a huge budget the rows equal an exact oracle. ``contributors``
are the distinct (member_no, bucket) with any input line, published or not (usage and dividends).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from aggregation.dp import Kind, NoisePlan, add_noise
from aggregation.kanon import parent_cell_expr

CONTRIBUTOR_SCHEMA = {"member_no": pl.Int64, "bucket": pl.Int64}
CELL_ROW_SCHEMA = {"bucket": pl.Int64, "cell": pl.Int64, "resolution": pl.Int64, "members": pl.Int64}
PAIR_ROW_SCHEMA = {"bucket": pl.Int64, "origin": pl.Int64, "destination": pl.Int64,
                   "resolution": pl.Int64, "members": pl.Int64}
_RESOLUTION_SHIFT = 52
_RESOLUTION_FIELD = 0xF << _RESOLUTION_SHIFT


@dataclass(frozen=True)
class SealedCells:
    """rows: bucket, cell, resolution, members (sorted bucket, resolution desc, cell); contributors."""

    rows: pl.DataFrame
    contributors: pl.DataFrame


@dataclass(frozen=True)
class SealedPairs:
    """rows: bucket, origin, destination, resolution, members (sorted bucket, resolution desc, origin,
    destination); contributors."""

    rows: pl.DataFrame
    contributors: pl.DataFrame


def _prepare(lines: pl.DataFrame, keys: list[str], plan: NoisePlan) -> pl.DataFrame:
    """Typed, checked, with duplicate (member, bucket, key) lines summed."""
    needed = ["bucket", "member_no", *keys, "weight"]
    missing = [name for name in needed if name not in lines.columns]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")
    frame = lines.select([pl.col(name).cast(pl.Int64) for name in needed])
    if frame.null_count().sum_horizontal().item():
        raise ValueError("contribution lines must not hold nulls")
    wrong = frame.filter(pl.any_horizontal(
        [(pl.col(key) & _RESOLUTION_FIELD) != (plan.resolution << _RESOLUTION_SHIFT) for key in keys]))
    if wrong.height:
        raise ValueError(f"every {'/'.join(keys)} must be an H3 cell at resolution {plan.resolution}")
    return frame.group_by("member_no", "bucket", *keys).agg(pl.col("weight").sum())


def _bound(summed: pl.DataFrame, keys: list[str], bound: int) -> pl.DataFrame:
    """Per (member, bucket) the at most ``bound`` keys with most weight, ties to the smaller key."""
    owner = ["member_no", "bucket"]
    if bound == 1 and len(keys) == 1:  # no sort: the smallest of each owner's heaviest keys
        key = keys[0]
        return (summed.lazy().filter(pl.col("weight") == pl.col("weight").max().over(owner))
                .group_by(owner).agg(pl.col(key).min()).collect())
    ranked = summed.lazy().sort([*owner, "weight", *keys], descending=[False, False, True, *[False] * len(keys)])
    return ranked.group_by(owner, maintain_order=True).head(bound).select(*owner, *keys).collect()


def _generalise(contributions: pl.DataFrame, keys: list[str], plan: NoisePlan) -> list[pl.DataFrame]:
    """The published rows of every level (the loop of step 2); ``contributions`` are distinct."""
    group = ["bucket", *keys]
    pending = contributions.select("member_no", *group)
    published: list[pl.DataFrame] = []
    for level in range(plan.resolution, plan.coarsest_resolution - 1, -1):
        if level < plan.resolution:
            pending = (pending.with_columns([parent_cell_expr(pl.col(key), level) for key in keys])
                       .unique())  # a member reaching one parent twice counts once
        if pending.height == 0:
            break
        counts = pending.group_by(group).agg(pl.len().cast(pl.Int64).alias("members"))
        noisy = counts.with_columns(add_noise(counts.get_column("members"), plan=plan))
        kept = noisy.filter(pl.col("members") >= plan.tau)
        published.append(kept.with_columns(pl.lit(level, dtype=pl.Int64).alias("resolution")))
        pending = pending.join(kept.select(group), on=group, how="anti")
    return published


def _seal(lines: pl.DataFrame, keys: list[str], plan: NoisePlan,
          schema: Mapping[str, type[pl.DataType]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    summed = _prepare(lines, keys, plan)
    contributors = summed.select("member_no", "bucket").unique().sort("bucket", "member_no")
    contributions = _bound(summed, keys, plan.contribution_bound)
    parts = [part.select(list(schema)) for part in _generalise(contributions, keys, plan)]
    rows = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    order = ["bucket", "resolution", *keys]
    rows = rows.sort(order, descending=[False, True, *[False] * len(keys)])
    return rows, contributors


def seal_cells(contributions: pl.DataFrame, *, plan: NoisePlan) -> SealedCells:
    """Seal presence or stays lines (bucket, member_no, cell, weight) under ``plan``."""
    if plan.kind is Kind.OD:
        raise ValueError("od families are sealed with seal_pairs")
    rows, contributors = _seal(contributions, ["cell"], plan, CELL_ROW_SCHEMA)
    return SealedCells(rows=rows, contributors=contributors)


def seal_pairs(trips: pl.DataFrame, *, plan: NoisePlan) -> SealedPairs:
    """Seal od lines (bucket, member_no, origin, destination, weight) under ``plan``."""
    if plan.kind is not Kind.OD:
        raise ValueError("only od families are sealed with seal_pairs")
    rows, contributors = _seal(trips, ["origin", "destination"], plan, PAIR_ROW_SCHEMA)
    return SealedPairs(rows=rows, contributors=contributors)
