"""The kinds of table a family can be, each with the function that seals one chunk of buckets.

This registry is the one place a kind is made available: licence requests for a kind not in
``SEALERS`` are refused (422), and the sealer dispatches on it. A kind's function reads its input
inside the chunk's snapshot (``coop.tables.inputs``) and returns the noisy rows and the contributors.

``stays`` and ``od`` read the chunk's pings with a margin either side (``read_span``, from
``aggregation.stays.read_window``; eligibility is judged over that whole span), detect each member's
stays there, and keep what overlaps (stays) or departs in (od) the chunk's buckets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from sqlalchemy.engine import Connection

from aggregation.dp import NoisePlan
from aggregation.sealing import seal_cells, seal_pairs
from aggregation.stays import (
    DEFAULT_MIN_MINUTES,
    DEFAULT_RADIUS_M,
    detect_stays,
    detect_trips,
    read_window,
    stay_contributions,
    trip_contributions,
)
from coop.tables.inputs import Eligible, eligible_pings, grouped_pings

CELL_ROWS = {"bucket": pl.Int64, "cell": pl.Int64, "resolution": pl.Int64, "members": pl.Int64}
PAIR_ROWS = {"bucket": pl.Int64, "origin": pl.Int64, "destination": pl.Int64, "resolution": pl.Int64,
             "members": pl.Int64}
CONTRIBUTORS = {"member_no": pl.Int64, "bucket": pl.Int64}


@dataclass(frozen=True)
class ChunkInput:
    """One chunk to seal: buckets ``[lo_ms, hi_ms)`` of ``length_ms`` each, indexed 0, 1, ... from lo."""

    connection: Connection
    eligible: Eligible
    plan: NoisePlan
    resolution: int
    lo_ms: int
    hi_ms: int
    length_ms: int
    stay_radius_m: float = DEFAULT_RADIUS_M
    stay_min_minutes: float = DEFAULT_MIN_MINUTES


@dataclass(frozen=True)
class SealedChunk:
    """Noisy rows (``bucket`` = index in the chunk) and who gave input to which bucket."""

    cells: pl.DataFrame
    pairs: pl.DataFrame
    contributors: pl.DataFrame


ChunkSealer = Callable[[ChunkInput], SealedChunk]


def seal_presence(chunk: ChunkInput) -> SealedChunk:
    """Distinct members with a ping in the cell during the bucket (the database groups the pings)."""
    contributions = grouped_pings(chunk.connection, eligible=chunk.eligible, resolution=chunk.resolution,
                                  lo_ms=chunk.lo_ms, hi_ms=chunk.hi_ms, length_ms=chunk.length_ms)
    sealed = seal_cells(contributions, plan=chunk.plan)
    return SealedChunk(cells=sealed.rows.select(list(CELL_ROWS)), pairs=pl.DataFrame(schema=PAIR_ROWS),
                       contributors=sealed.contributors.select(list(CONTRIBUTORS)))


def _chunk_stays(chunk: ChunkInput) -> pl.DataFrame:
    """The stays of every eligible member found in the chunk's read span."""
    read_lo, read_hi = read_window(chunk.lo_ms, chunk.hi_ms)
    found = eligible_pings(chunk.connection, eligible=chunk.eligible, lo_ms=read_lo, hi_ms=read_hi)
    return detect_stays(found, radius_m=chunk.stay_radius_m, min_minutes=chunk.stay_min_minutes)


def _indexed(lines: pl.DataFrame, chunk: ChunkInput) -> pl.DataFrame:
    """Bucket starts (epoch ms) -> bucket indexes in the chunk."""
    return lines.with_columns((pl.col("bucket") - chunk.lo_ms) // chunk.length_ms)


def seal_stays(chunk: ChunkInput) -> SealedChunk:
    """Distinct members who stayed in the cell during the bucket (a stay counts in every bucket it
    overlaps; bounding keeps each member's L cells with the longest stay time in the bucket)."""
    lines = stay_contributions(_chunk_stays(chunk), bucket_ms=chunk.length_ms, resolution=chunk.resolution,
                               start_ms=chunk.lo_ms, end_ms=chunk.hi_ms)
    sealed = seal_cells(_indexed(lines, chunk), plan=chunk.plan)
    return SealedChunk(cells=sealed.rows.select(list(CELL_ROWS)), pairs=pl.DataFrame(schema=PAIR_ROWS),
                       contributors=sealed.contributors.select(list(CONTRIBUTORS)))


def seal_od(chunk: ChunkInput) -> SealedChunk:
    """Distinct members who made a trip from origin to destination departing in the bucket
    (bounding keeps each member's L pairs with most trips in the bucket)."""
    trips = detect_trips(_chunk_stays(chunk), resolution=chunk.resolution)
    lines = trip_contributions(trips, bucket_ms=chunk.length_ms, start_ms=chunk.lo_ms, end_ms=chunk.hi_ms)
    sealed = seal_pairs(_indexed(lines, chunk), plan=chunk.plan)
    return SealedChunk(cells=pl.DataFrame(schema=CELL_ROWS), pairs=sealed.rows.select(list(PAIR_ROWS)),
                       contributors=sealed.contributors.select(list(CONTRIBUTORS)))


SEALERS: dict[str, ChunkSealer] = {"presence": seal_presence, "stays": seal_stays, "od": seal_od}
"""kind -> its chunk sealer."""

_WIDENED = frozenset({"stays", "od"})


def read_span(kind: str, lo_ms: int, hi_ms: int) -> tuple[int, int]:
    """The pings ``[from, to)`` (and the span eligibility is judged over) to seal ``[lo_ms, hi_ms)``."""
    return read_window(lo_ms, hi_ms) if kind in _WIDENED else (lo_ms, hi_ms)


def accepted_kinds() -> frozenset[str]:
    """The kinds a licence may ask for today."""
    return frozenset(SEALERS)
