"""What a sealing chunk reads: who is eligible, and their pings grouped by the database.

This is where the sealer meets the data of other domains (accounts, consent, ingest); it only reads,
inside one snapshot transaction, so consent, erasure and pings are judged at one instant.

Invariants:
- A member is eligible for a purpose when countable (``coop.accounts.service.countable_member_ids``:
  verified), not erased, with a live data key, and their latest consent event for the purpose is
  ``given``; a ping counts only if consent was also given at the ping's time
  (``aggregation.consent_windows``).
- Presence: the database groups, one line per (bucket, member, cell at the family's resolution) with
  its ping count as ``weight``; no ping row travels to Python. Stays and od need each member's pings
  in time order, so ``eligible_pings`` reads them (member_no, ts_ms, cell: no coordinate, no blob). Windows travel as arrays (PostgreSQL) or a
  temporary table (SQLite), never as one bind parameter per member.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from aggregation.consent_windows import ConsentChange, consent_windows
from aggregation.kanon import FINEST_RESOLUTION, parent_cell_sql
from consent.models import ConsentEvent
from coop.accounts.models import Account, MemberKey
from coop.accounts.service import countable_member_ids
from coop.kit.db import READ_SNAPSHOT, is_sqlite
from coop.kit.settings import Settings
from coop.kit.timeutil import as_utc

CONTRIBUTION_SCHEMA = {"bucket": pl.Int64, "member_no": pl.Int64, "cell": pl.Int64, "weight": pl.Int64}
PING_SCHEMA = {"member_no": pl.Int64, "ts_ms": pl.Int64, "cell": pl.Int64}
_FETCH_ROWS = 200_000


WINDOW_SCHEMA = {"member_no": pl.Int64, "start_ms": pl.Int64, "end_ms": pl.Int64}
_UNBOUNDED_MS = 2**62


@dataclass(frozen=True)
class Eligible:
    """The members whose pings may count in one chunk, with their consent windows clipped to it."""

    windows: pl.DataFrame
    """member_no, start_ms, end_ms: pings with ``start_ms <= ts_ms < end_ms`` count."""
    account_ids: dict[int, str]
    """member_no -> account id (for ``sealed_contribution``), for every eligible member."""


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One consistent read that never blocks ingest: SQLite a deferred transaction (WAL), PostgreSQL
    REPEATABLE READ. Nothing is written to the database's own tables through it."""
    if is_sqlite(str(engine.url)):
        bind = engine.execution_options(**{READ_SNAPSHOT: True})
    else:
        bind = engine.execution_options(isolation_level="REPEATABLE READ")
    with bind.connect() as connection, connection.begin() as transaction:
        try:
            yield connection
        finally:
            transaction.rollback()


def _fingerprint_sql(settings: Settings) -> sa.Select[Any]:
    """What decides eligibility, counted: consent events are append-only and erasure, key shredding and
    verification only ever happen once per member, so any change to eligibility changes a count."""
    countable = countable_member_ids(settings).subquery()
    return sa.select(
        sa.select(sa.func.count()).where(col(ConsentEvent.purpose_code) == sa.bindparam("purpose"))
        .scalar_subquery(),
        sa.select(sa.func.count()).where(col(Account.erased_at).is_not(None)).scalar_subquery(),
        sa.select(sa.func.count()).where(col(MemberKey.wrapped_key).is_(None)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(countable).scalar_subquery())


class EligibilityCache:
    """One family's eligible members and consent windows, reread only when eligibility may have changed.

    Each chunk checks a fingerprint (:func:`_fingerprint_sql`) inside its own snapshot, so eligibility
    is always judged at the chunk's sealing instant, without rereading every consent event per chunk.
    """

    def __init__(self, *, purpose_code: str, settings: Settings) -> None:
        self.purpose_code = purpose_code
        self.settings = settings
        self._fingerprint: tuple[Any, ...] | None = None
        self._windows = pl.DataFrame(schema=WINDOW_SCHEMA)
        self._accounts: dict[int, str] = {}

    def _reload(self, connection: Connection) -> None:
        query = (sa.select(col(MemberKey.no), col(MemberKey.account_id), col(ConsentEvent.state),
                           col(ConsentEvent.at))
                 .join(Account, col(Account.id) == col(ConsentEvent.member_id))
                 .join(MemberKey, col(MemberKey.account_id) == col(ConsentEvent.member_id))
                 .where(col(ConsentEvent.purpose_code) == self.purpose_code, col(Account.erased_at).is_(None),
                        col(MemberKey.wrapped_key).is_not(None),
                        col(Account.id).in_(countable_member_ids(self.settings))))
        changes: dict[int, list[ConsentChange]] = defaultdict(list)
        accounts: dict[int, str] = {}
        for number, account_id, state, at in connection.execute(query):
            member_no = int(number or 0)
            changes[member_no].append(ConsentChange(at=as_utc(at), state=str(state)))
            accounts[member_no] = str(account_id)
        rows = [(member_no, window.start_ms, window.end_ms) for member_no, member_changes in changes.items()
                for window in consent_windows(member_changes, start_ms=-_UNBOUNDED_MS, end_ms=_UNBOUNDED_MS)]
        self._windows = pl.DataFrame(rows, schema=WINDOW_SCHEMA, orient="row")
        self._accounts = accounts

    def at(self, connection: Connection, *, lo_ms: int, hi_ms: int) -> Eligible:
        """Eligible members now (in ``connection``'s snapshot), their windows clipped to ``[lo_ms, hi_ms)``."""
        fingerprint = tuple(connection.execute(_fingerprint_sql(self.settings),
                                               {"purpose": self.purpose_code}).one())
        if fingerprint != self._fingerprint:
            self._reload(connection)
            self._fingerprint = fingerprint
        clipped = (self._windows.lazy()
                   .filter(pl.col("start_ms") < hi_ms, pl.col("end_ms") > lo_ms)
                   .with_columns(pl.col("start_ms").clip(lower_bound=lo_ms), pl.col("end_ms").clip(upper_bound=hi_ms))
                   .collect())
        return Eligible(windows=clipped, account_ids=self._accounts)


def _cell_sql(resolution: int) -> str:
    return "p.cell" if resolution == FINEST_RESOLUTION else parent_cell_sql("p.cell", resolution)


def _grouped_sql(resolution: int, windows_from: str, member: str = "p.member_no") -> str:
    return (f"SELECT (p.ts_ms - :lo) / :length AS bucket, p.member_no, {_cell_sql(resolution)} AS cell, "  # noqa: S608
            f"count(*) AS weight FROM ping AS p JOIN {windows_from} AS w ON w.member_no = {member} "
            "AND p.ts_ms >= w.start_ms AND p.ts_ms < w.end_ms "
            "WHERE p.ts_ms >= :lo AND p.ts_ms < :hi GROUP BY 1, 2, 3")


_PG_WINDOWS = ("(SELECT * FROM unnest(CAST(:members AS integer[]), CAST(:starts AS bigint[]), "
               "CAST(:ends AS bigint[])) AS t(member_no, start_ms, end_ms))")
_SQLITE_WINDOWS = "temp.seal_window"


def grouped_pings(connection: Connection, *, eligible: Eligible, resolution: int, lo_ms: int, hi_ms: int,
                  length_ms: int) -> pl.DataFrame:
    """bucket (index from ``lo_ms`` in ``length_ms`` steps), member_no, cell, weight: eligible pings
    in ``[lo_ms, hi_ms)`` grouped by the database."""
    if eligible.windows.height == 0:
        return pl.DataFrame(schema=CONTRIBUTION_SCHEMA)
    members, starts, ends = (eligible.windows.get_column(name).to_list() for name in WINDOW_SCHEMA)
    params: dict[str, Any] = {"lo": lo_ms, "hi": hi_ms, "length": length_ms}
    if is_sqlite(str(connection.engine.url)):
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("CREATE TEMP TABLE IF NOT EXISTS seal_window (member_no INTEGER NOT NULL, "
                    "start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, PRIMARY KEY (member_no, start_ms)) "
                    "WITHOUT ROWID")
        raw.execute("DELETE FROM temp.seal_window")
        raw.executemany("INSERT INTO temp.seal_window VALUES (?, ?, ?)", zip(members, starts, ends, strict=True))
        # ``+p.member_no``: read the chunk's pings in time order (one range of ix_ping_ts) and look each
        # member up in the windows, rather than one index probe per member with random row reads.
        sql = _grouped_sql(resolution, _SQLITE_WINDOWS, member="+p.member_no")
    else:
        params.update(members=members, starts=starts, ends=ends)
        sql = _grouped_sql(resolution, _PG_WINDOWS)
    rows = connection.execute(sa.text(sql), params).all()
    return pl.DataFrame(rows, schema=CONTRIBUTION_SCHEMA, orient="row")


def _pings_sql(windows_from: str, member: str = "p.member_no") -> str:
    return (f"SELECT p.member_no, p.ts_ms, p.cell FROM ping AS p JOIN {windows_from} AS w "  # noqa: S608
            f"ON w.member_no = {member} AND p.ts_ms >= w.start_ms AND p.ts_ms < w.end_ms "
            "WHERE p.ts_ms >= :lo AND p.ts_ms < :hi")


def eligible_pings(connection: Connection, *, eligible: Eligible, lo_ms: int, hi_ms: int) -> pl.DataFrame:
    """member_no, ts_ms, cell (resolution 10) of every eligible ping in ``[lo_ms, hi_ms)``, in no
    particular order (stay detection orders them): what stays and od need, no coordinate, no blob."""
    if eligible.windows.height == 0:
        return pl.DataFrame(schema=PING_SCHEMA)
    members, starts, ends = (eligible.windows.get_column(name).to_list() for name in WINDOW_SCHEMA)
    params: dict[str, Any] = {"lo": lo_ms, "hi": hi_ms}
    if is_sqlite(str(connection.engine.url)):
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("CREATE TEMP TABLE IF NOT EXISTS seal_window (member_no INTEGER NOT NULL, "
                    "start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, PRIMARY KEY (member_no, start_ms)) "
                    "WITHOUT ROWID")
        raw.execute("DELETE FROM temp.seal_window")
        raw.executemany("INSERT INTO temp.seal_window VALUES (?, ?, ?)", zip(members, starts, ends, strict=True))
        sql = _pings_sql(_SQLITE_WINDOWS, member="+p.member_no")  # time order, as grouped_pings reads
    else:
        params.update(members=members, starts=starts, ends=ends)
        sql = _pings_sql(_PG_WINDOWS)
    cursor = connection.execute(sa.text(sql), params)
    batches = [pl.DataFrame(rows, schema=PING_SCHEMA, orient="row")
               for rows in iter(lambda: cursor.fetchmany(_FETCH_ROWS), [])]
    return pl.concat(batches) if batches else pl.DataFrame(schema=PING_SCHEMA)
