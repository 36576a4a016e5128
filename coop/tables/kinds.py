"""The kinds of table a family can be, each with the function that seals one chunk of buckets.

This registry is the one place a kind is made available: licence requests for a kind not in
``SEALERS`` are refused (422), and the sealer dispatches on it. A kind's function reads its input
inside the chunk's snapshot (``coop.tables.inputs``) and returns the noisy rows and the contributors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from sqlalchemy.engine import Connection

from aggregation.dp import NoisePlan
from aggregation.sealing import seal_cells
from coop.tables.inputs import Eligible, grouped_pings

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


SEALERS: dict[str, ChunkSealer] = {"presence": seal_presence}
"""kind -> its chunk sealer. Add ``stays`` and ``od`` here when they are wired."""


def accepted_kinds() -> frozenset[str]:
    """The kinds a licence may ask for today."""
    return frozenset(SEALERS)
