"""Bulk writes and targeted reads of the ``ping`` table, with the fastest safe path per database.

Invariants:
- ``insert_pings`` runs inside the caller's transaction (the request's session) and never fails on a
  ``(member_no, client_id)`` that already exists, even when a concurrent transaction inserted it:
  PostgreSQL ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING``, SQLite ``INSERT OR IGNORE``.
  It returns how many rows were really inserted.
- Deletions return the number of rows deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from coop.ingest.models import Ping

PingRow = tuple[int, str, int, int, bytes]
"""``(member_no, client_id, ts_ms, cell, blob)``."""

_SQLITE_INSERT = "INSERT OR IGNORE INTO ping (member_no, client_id, ts_ms, cell, blob) VALUES (?, ?, ?, ?, ?)"
_POSTGRES_INSERT = (
    "INSERT INTO ping (member_no, client_id, ts_ms, cell, blob) "
    "SELECT * FROM unnest(%b::int4[], %b::text[], %b::int8[], %b::int8[], %b::bytea[]) "
    "ON CONFLICT (member_no, client_id) DO NOTHING"
)


def insert_pings(session: Session, rows: Sequence[PingRow]) -> int:
    """Insert ``rows``, skipping any whose ``(member_no, client_id)`` exists; the number inserted."""
    if not rows:
        return 0
    connection = session.connection()
    dbapi_connection: Any = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        columns = list(zip(*rows, strict=True))
        with dbapi_connection.cursor() as cursor:
            cursor.execute(_POSTGRES_INSERT, [list(column) for column in columns])
            return int(cursor.rowcount)
    cursor = dbapi_connection.cursor()
    try:
        cursor.executemany(_SQLITE_INSERT, rows)
        return int(cursor.rowcount)
    finally:
        cursor.close()


def delete_member_pings(session: Session, *, member_no: int) -> int:
    """Delete every stored ping of one member; the number deleted."""
    session.flush()
    result = session.connection().execute(sa.delete(Ping).where(col(Ping.member_no) == member_no))
    return int(result.rowcount)


def pings_in_cell_ranges(session: Session, *, member_no: int,
                         ranges: Iterable[tuple[int, int]]) -> list[tuple[int, str, int, bytes]]:
    """``(id, client_id, cell, blob)`` of the member's pings whose cell lies in any inclusive range."""
    conditions = [col(Ping.cell).between(low, high) for low, high in ranges]
    if not conditions:
        return []
    table = Ping.__table__  # type: ignore[attr-defined]
    query = (sa.select(table.c.id, table.c.client_id, table.c.cell, table.c.blob)
             .where(table.c.member_no == member_no, sa.or_(*conditions)))
    rows = session.connection().execute(query).all()
    return [(int(r[0]), str(r[1]), int(r[2]), bytes(r[3])) for r in rows]


def delete_pings_by_id(session: Session, ids: Sequence[int]) -> int:
    session.flush()
    connection = session.connection()
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        deleted += int(connection.execute(sa.delete(Ping).where(col(Ping.id).in_(chunk))).rowcount)
    return deleted
