"""Counting eligible pings per (member, bucket, cell) in Polars (pure: no database).

Invariants: a ping counts only inside one of its member's consent windows (windows are disjoint, so a
ping matches at most one) and inside the period; buckets start at ``period.start_ms`` plus whole
bucket lengths (UTC-aligned, as periods are); cells are mapped to the requested resolution with the
same bit arithmetic as ``h3.cell_to_parent``.
"""

from __future__ import annotations

import polars as pl

from aggregation.consent_windows import Window
from aggregation.kanon import FINEST_RESOLUTION, parent_cell_expr
from aggregation.periods import Period, TimeBucket

WINDOW_SCHEMA = {"member_no": pl.Int64, "start_ms": pl.Int64, "end_ms": pl.Int64}


def windows_frame(windows: dict[int, list[Window]]) -> pl.DataFrame:
    return pl.DataFrame([(member_no, w.start_ms, w.end_ms) for member_no, found in windows.items() for w in found],
                        schema=WINDOW_SCHEMA, orient="row")


def count_pings(pings: pl.DataFrame, windows: pl.DataFrame, *, period: Period, bucket: TimeBucket,
                cell_resolution: int) -> pl.DataFrame:
    """``pings`` (member_no, ts_ms, cell at resolution 10) -> member_no, bucket, cell, pings."""
    cell = pl.col("cell")
    if cell_resolution != FINEST_RESOLUTION:
        cell = parent_cell_expr(cell, cell_resolution)
    length = bucket.length_ms
    return (pings.lazy()
            .join(windows.lazy(), on="member_no")
            .filter(pl.col("ts_ms") >= pl.col("start_ms"), pl.col("ts_ms") < pl.col("end_ms"),
                    pl.col("ts_ms") >= period.start_ms, pl.col("ts_ms") < period.end_ms)
            .group_by("member_no",
                      (period.start_ms + (pl.col("ts_ms") - period.start_ms) // length * length).alias("bucket"),
                      cell.alias("cell"))
            .agg(pl.len().cast(pl.Int64).alias("pings"))
            .collect())
