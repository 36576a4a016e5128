"""What a sealing chunk reads: who is eligible, and their pings grouped by the database.

This is where the sealer meets the data of other domains (accounts, consent, ingest); it only reads,
inside one snapshot transaction, so consent, erasure and pings are judged at one instant.

Invariants:
- A member is eligible for a purpose when countable (``coop.accounts.service.countable_member_ids``:
  verified), not erased, with a live data key, and their latest consent event for the purpose is
  ``given``; a ping counts only if consent was also given at the ping's time
  (``aggregation.consent_windows``).
- The database groups: one line per (bucket, member, cell at the family's resolution) with its ping
  count as ``weight``; no ping row travels to Python. Windows travel as arrays (PostgreSQL) or a
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

from aggregation.consent_windows import ConsentChange, Window, consent_windows
from aggregation.kanon import FINEST_RESOLUTION, parent_cell_sql
from consent.models import ConsentEvent
from coop.accounts.models import Account, MemberKey
from coop.accounts.service import countable_member_ids
from coop.kit.db import READ_SNAPSHOT, is_sqlite
from coop.kit.settings import Settings
from coop.kit.timeutil import as_utc

CONTRIBUTION_SCHEMA = {"bucket": pl.Int64, "member_no": pl.Int64, "cell": pl.Int64, "weight": pl.Int64}


@dataclass(frozen=True)
class Eligible:
    """The members whose pings may count in one chunk, with their consent windows clipped to it."""

    windows: dict[int, list[Window]]
    account_ids: dict[int, str]
    """member_no -> account id (for ``sealed_contribution``)."""


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


def eligible_members(connection: Connection, *, purpose_code: str, settings: Settings, lo_ms: int,
                     hi_ms: int) -> Eligible:
    """Eligible members and their windows inside ``[lo_ms, hi_ms)`` (members without one are left out)."""
    query = (sa.select(col(MemberKey.no), col(MemberKey.account_id), col(ConsentEvent.state),
                       col(ConsentEvent.at))
             .join(Account, col(Account.id) == col(ConsentEvent.member_id))
             .join(MemberKey, col(MemberKey.account_id) == col(ConsentEvent.member_id))
             .where(col(ConsentEvent.purpose_code) == purpose_code, col(Account.erased_at).is_(None),
                    col(MemberKey.wrapped_key).is_not(None),
                    col(Account.id).in_(countable_member_ids(settings))))
    changes: dict[int, list[ConsentChange]] = defaultdict(list)
    accounts: dict[int, str] = {}
    for number, account_id, state, at in connection.execute(query):
        member_no = int(number or 0)
        changes[member_no].append(ConsentChange(at=as_utc(at), state=str(state)))
        accounts[member_no] = str(account_id)
    windows = {member_no: found for member_no, member_changes in changes.items()
               if (found := consent_windows(member_changes, start_ms=lo_ms, end_ms=hi_ms))}
    return Eligible(windows=windows, account_ids={no: accounts[no] for no in windows})


def _cell_sql(resolution: int) -> str:
    return "p.cell" if resolution == FINEST_RESOLUTION else parent_cell_sql("p.cell", resolution)


def _grouped_sql(resolution: int, windows_from: str) -> str:
    return (f"SELECT (p.ts_ms - :lo) / :length AS bucket, p.member_no, {_cell_sql(resolution)} AS cell, "  # noqa: S608
            f"count(*) AS weight FROM ping AS p JOIN {windows_from} AS w ON w.member_no = p.member_no "
            "AND p.ts_ms >= w.start_ms AND p.ts_ms < w.end_ms "
            "WHERE p.ts_ms >= :lo AND p.ts_ms < :hi GROUP BY 1, 2, 3")


_PG_WINDOWS = ("(SELECT * FROM unnest(CAST(:members AS integer[]), CAST(:starts AS bigint[]), "
               "CAST(:ends AS bigint[])) AS t(member_no, start_ms, end_ms))")
_SQLITE_WINDOWS = "temp.seal_window"


def _window_columns(windows: dict[int, list[Window]]) -> tuple[list[int], list[int], list[int]]:
    members, starts, ends = [], [], []
    for member_no, found in windows.items():
        for window in found:
            members.append(member_no)
            starts.append(window.start_ms)
            ends.append(window.end_ms)
    return members, starts, ends


def grouped_pings(connection: Connection, *, eligible: Eligible, resolution: int, lo_ms: int, hi_ms: int,
                  length_ms: int) -> pl.DataFrame:
    """bucket (index from ``lo_ms`` in ``length_ms`` steps), member_no, cell, weight: eligible pings
    in ``[lo_ms, hi_ms)`` grouped by the database."""
    if not eligible.windows:
        return pl.DataFrame(schema=CONTRIBUTION_SCHEMA)
    members, starts, ends = _window_columns(eligible.windows)
    params: dict[str, Any] = {"lo": lo_ms, "hi": hi_ms, "length": length_ms}
    if is_sqlite(str(connection.engine.url)):
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("CREATE TEMP TABLE IF NOT EXISTS seal_window "
                    "(member_no INTEGER NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL)")
        raw.execute("CREATE INDEX IF NOT EXISTS temp.ix_seal_window_member ON seal_window (member_no)")
        raw.execute("DELETE FROM temp.seal_window")
        raw.executemany("INSERT INTO temp.seal_window VALUES (?, ?, ?)", zip(members, starts, ends, strict=True))
        sql = _grouped_sql(resolution, _SQLITE_WINDOWS)
    else:
        params.update(members=members, starts=starts, ends=ends)
        sql = _grouped_sql(resolution, _PG_WINDOWS)
    rows = connection.execute(sa.text(sql), params).all()
    return pl.DataFrame(rows, schema=CONTRIBUTION_SCHEMA, orient="row")
