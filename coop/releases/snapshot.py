"""The release builder's one read of the database: consent windows and per-(member, bucket, cell) counts.

Invariants:
- Everything is read in ONE snapshot transaction (PostgreSQL ``REPEATABLE READ``; SQLite a deferred
  read transaction in WAL mode, which never blocks ingest), so only pings and consent events committed
  when the build starts count, and consent is judged at that same instant.
- Erased members (``account.erased_at`` set or ``member_key.wrapped_key`` NULL) get no window, so none
  of their pings count; a ping counts only inside one of its member's consent windows.
- SQLite (in-process): the pings are read in rowid ranges (sequential reads, one chunk in memory at a
  time) and Polars joins the windows and counts each chunk; partial counts are summed at the end.
- PostgreSQL: a streaming columnar read: the eligible members' pings in the period travel packed into
  one ``bytea`` per group of members (20 bytes a ping, no per-row protocol or Python cost) and Polars
  joins the windows and counts each group as it arrives; groups partition the members, so the builder
  holds one group of pings at a time plus the reduced table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregation.consent_windows import ConsentChange, Window, consent_windows
from aggregation.counting import count_pings, windows_frame
from aggregation.kanon import COUNT_SCHEMA, sum_counts
from aggregation.periods import Period, TimeBucket
from coop.kit.db import is_sqlite
from coop.kit.timeutil import as_utc

FINEST_RESOLUTION = 10
_PACK_GROUPS = 16
_FETCH_ROWS = 200_000
_SQLITE_CHUNK_IDS = 1_000_000
PING_SCHEMA = {"member_no": pl.Int64, "ts_ms": pl.Int64, "cell": pl.Int64}

_CONSENT_SQL = """
SELECT mk.no, ce.state, ce.at
FROM consent_event AS ce
JOIN account AS a ON a.id = ce.member_id
JOIN member_key AS mk ON mk.account_id = ce.member_id
WHERE ce.purpose_code = :purpose AND a.erased_at IS NULL AND mk.wrapped_key IS NOT NULL
"""


@dataclass(frozen=True)
class Snapshot:
    """What the build sees: the reduced counts and how many members had a consent window."""

    counts: pl.DataFrame
    """member_no, bucket (start, epoch ms), cell (at the requested resolution), pings."""
    eligible_members: int


class _Reader(Protocol):
    def rows(self, sql: str, params: dict[str, Any]) -> Iterator[Sequence[Any]]: ...


def _as_datetime(value: Any) -> datetime:
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def _windows(reader: _Reader, *, purpose_code: str, period: Period) -> dict[int, list[Window]]:
    changes: dict[int, list[ConsentChange]] = defaultdict(list)
    for member_no, state, at in reader.rows(_CONSENT_SQL, {"purpose": purpose_code}):
        changes[int(member_no)].append(ConsentChange(at=_as_datetime(at), state=str(state)))
    windows = {member_no: consent_windows(member_changes, start_ms=period.start_ms, end_ms=period.end_ms)
               for member_no, member_changes in changes.items()}
    return {member_no: found for member_no, found in windows.items() if found}


class _SqliteReader:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def rows(self, sql: str, params: dict[str, Any]) -> Iterator[Sequence[Any]]:
        cursor = self._connection.execute(sql, params)
        while batch := cursor.fetchmany(_FETCH_ROWS):
            yield from batch


@contextmanager
def _sqlite_snapshot(engine: Engine) -> Iterator[Any]:
    # The engine begins SQLite transactions with BEGIN IMMEDIATE (a write lock); a build must not hold
    # that for seconds, so it takes a plain deferred read transaction on the DBAPI connection instead.
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("BEGIN DEFERRED")
        try:
            yield raw
        finally:
            raw.execute("ROLLBACK")


def _read_sqlite(engine: Engine, *, purpose_code: str, period: Period, bucket: TimeBucket,
                 cell_resolution: int) -> Snapshot:
    with _sqlite_snapshot(engine) as raw:
        windows = _windows(_SqliteReader(raw), purpose_code=purpose_code, period=period)
        window_frame = windows_frame(windows)
        low, high = raw.execute("SELECT min(id), max(id) FROM ping").fetchone()
        partial = []
        for first in range(low or 0, (high or -1) + 1, _SQLITE_CHUNK_IDS):
            # ``+ts_ms`` keeps SQLite on the rowid range (a sequential read) instead of the ts index.
            rows = raw.execute("SELECT member_no, ts_ms, cell FROM ping WHERE id >= ? AND id < ? "
                               "AND +ts_ms >= ? AND +ts_ms < ?",
                               (first, first + _SQLITE_CHUNK_IDS, period.start_ms, period.end_ms)).fetchall()
            if rows:
                pings = pl.DataFrame(rows, schema=PING_SCHEMA, orient="row")
                partial.append(count_pings(pings, window_frame, period=period, bucket=bucket,
                                           cell_resolution=cell_resolution))
    counts = sum_counts(pl.concat(partial)) if partial else pl.DataFrame(schema=COUNT_SCHEMA)
    return Snapshot(counts=counts, eligible_members=len(windows))


# Each eligible ping travels as 20 packed bytes inside a few bytea values (one per group of members), so
# there is no per-row protocol or Python cost; Polars then joins the windows and counts.
_PG_PINGS = ("SELECT string_agg(int4send(member_no) || int8send(ts_ms) || int8send(cell), CAST('' AS bytea)) "
             "FROM ping WHERE ts_ms >= :lo AND ts_ms < :hi AND member_no = ANY(CAST(:members AS integer[])) "
             "GROUP BY member_no % {groups}")
_PING_DTYPE = np.dtype([("member_no", ">i4"), ("ts_ms", ">i8"), ("cell", ">i8")])


class _PostgresReader:
    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection

    def rows(self, sql: str, params: dict[str, Any]) -> Iterator[Sequence[Any]]:
        yield from self._connection.execute(sa.text(sql), params)


def _decode_pings(packed: bytes) -> pl.DataFrame:
    records = np.frombuffer(packed, dtype=_PING_DTYPE)
    return pl.DataFrame({name: records[name].astype(np.int64) for name in ("member_no", "ts_ms", "cell")})


def _read_postgres(engine: Engine, *, purpose_code: str, period: Period, bucket: TimeBucket,
                   cell_resolution: int) -> Snapshot:
    with engine.connect() as base:
        connection = base.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True,
                                            stream_results=True, max_row_buffer=1)
        with connection.begin() as transaction:
            windows = _windows(_PostgresReader(connection), purpose_code=purpose_code, period=period)
            window_frame = windows_frame(windows)
            params = {"lo": period.start_ms, "hi": period.end_ms, "members": sorted(windows)}
            frames = [count_pings(_decode_pings(bytes(row[0])), window_frame, period=period, bucket=bucket,
                                  cell_resolution=cell_resolution)
                      for row in connection.execute(sa.text(_PG_PINGS.format(groups=_PACK_GROUPS)), params)]
            transaction.rollback()
    counts = pl.concat(frames) if frames else pl.DataFrame(schema=COUNT_SCHEMA)
    return Snapshot(counts=counts, eligible_members=len(windows))


def read_snapshot(engine: Engine, *, purpose_code: str, period: Period, bucket: TimeBucket,
                  cell_resolution: int) -> Snapshot:
    """Eligible ping counts per (member, bucket, cell at ``cell_resolution``) for one purpose and period."""
    reader = _read_sqlite if is_sqlite(str(engine.url)) else _read_postgres
    return reader(engine, purpose_code=purpose_code, period=period, bucket=bucket,
                  cell_resolution=cell_resolution)
