"""Reading a member's own stored pings, decrypted: one page at a time, or streamed in batches.

Invariants:
- Every query is filtered by the caller's member number, so another member's ping can never appear,
  whatever cursor or range is sent.
- Order is ``(ts_ms, row id)``: unique, so keyset pages neither skip nor repeat a row, and it follows
  the ``(member_no, ts_ms)`` index (SQLite appends the row id to every index; PostgreSQL adds an
  incremental sort on ties only).
- Streaming reads ``STREAM_BATCH`` rows at a time through a server-side cursor on PostgreSQL
  (``yield_per`` sets ``stream_results``) and the stepping cursor of SQLite: memory does not grow with
  the number of pings.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from coop.accounts.service import data_key_for, member_key_for
from coop.ingest.codec import PingPayload, open_ping
from coop.ingest.models import Ping
from coop.kit.crypto import DataKey, Keyring
from coop.kit.db import read_snapshot
from coop.kit.errors import InvalidInput, NotFound
from coop.kit.pagination import Page, decode_cursor, encode_cursor
from coop.rights.schemas import PingPublic
from coop.rights.timerange import TimeRange

STREAM_BATCH = 2000
INT64_MAX = 2**63 - 1
_EPOCH_NAIVE = datetime(1970, 1, 1)  # UTC by convention: written out with "Z"
_PING = Ping.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class MemberPings:
    """What is needed to read one member's pings: their number and unwrapped data key."""

    member_no: int
    data_key: DataKey


class PingRecord(NamedTuple):
    client_id: str
    ts_ms: int
    payload: PingPayload


def member_pings(session: Session, *, member_id: str, keyring: Keyring) -> MemberPings:
    """The member's number and data key; 404 if the key was destroyed (an erased member)."""
    member_key = member_key_for(session, member_id)
    data_key = data_key_for(member_key, keyring)
    if data_key is None or member_key.no is None:
        raise NotFound("this member's data key has been destroyed; no pings can be read")
    return MemberPings(member_no=member_key.no, data_key=data_key)


def format_ts(ts_ms: int) -> str:
    """RFC 3339 UTC with ``Z``; milliseconds appear only when the time has them."""
    moment = _EPOCH_NAIVE + timedelta(milliseconds=ts_ms)
    return moment.isoformat(timespec="milliseconds" if ts_ms % 1000 else "seconds") + "Z"


def ping_dict(record: PingRecord) -> dict[str, Any]:
    """The record in the ingest Ping shape (see ``coop.rights.schemas.PING_FIELDS``)."""
    payload = record.payload
    return {"id": record.client_id, "ts": format_ts(record.ts_ms), "lat": payload.lat, "lng": payload.lng,
            "accuracy_m": payload.accuracy_m, "speed_mps": payload.speed_mps, "altitude_m": payload.altitude_m,
            "heading_deg": payload.heading_deg, "battery": payload.battery, "activity": payload.activity}


def _query(source: MemberPings, time_range: TimeRange) -> sa.Select[Any]:
    query = sa.select(_PING.c.id, _PING.c.client_id, _PING.c.ts_ms, _PING.c.blob).where(
        _PING.c.member_no == source.member_no)
    if time_range.start_ms is not None:
        query = query.where(_PING.c.ts_ms >= time_range.start_ms)
    if time_range.end_ms is not None:
        query = query.where(_PING.c.ts_ms < time_range.end_ms)
    return query.order_by(_PING.c.ts_ms, _PING.c.id)


def _open(source: MemberPings, client_id: str, ts_ms: int, blob: bytes) -> PingRecord:
    payload = open_ping(source.data_key, bytes(blob), member_no=source.member_no, client_id=client_id)
    return PingRecord(client_id, ts_ms, payload)


def _cursor_key(cursor: str | None) -> tuple[int, int] | None:
    key = decode_cursor(cursor, arity=2)
    if key is None:
        return None
    if not all(type(value) is int and -INT64_MAX <= value <= INT64_MAX for value in key):
        raise InvalidInput("malformed cursor")
    return key[0], key[1]


def page_pings(session: Session, *, source: MemberPings, time_range: TimeRange, limit: int,
               cursor: str | None) -> Page[PingPublic]:
    """One page of the member's pings in the range, ordered by time then storage order."""
    query = _query(source, time_range)
    key = _cursor_key(cursor)
    if key is not None:
        query = query.where(sa.tuple_(_PING.c.ts_ms, _PING.c.id) > sa.tuple_(sa.literal(key[0], sa.BigInteger),
                                                                               sa.literal(key[1], sa.BigInteger)))
    rows = session.connection().execute(query.limit(limit + 1)).all()
    next_cursor = encode_cursor([rows[limit - 1].ts_ms, rows[limit - 1].id]) if len(rows) > limit else None
    items = [PingPublic(**ping_dict(_open(source, row.client_id, row.ts_ms, row.blob))) for row in rows[:limit]]
    return Page(items=items, next_cursor=next_cursor)


def ping_batches(session: Session, *, source: MemberPings, time_range: TimeRange,
                 batch_size: int = STREAM_BATCH) -> Generator[list[PingRecord], None, None]:
    """Every ping of the member in the range, decrypted, in batches (constant memory)."""
    result = session.execute(_query(source, time_range), execution_options={"yield_per": batch_size})
    try:
        for rows in result.partitions():
            yield [_open(source, client_id, ts_ms, blob) for _id, client_id, ts_ms, blob in rows]
    finally:
        result.close()


def stream_ping_batches(engine: Engine, *, source: MemberPings, time_range: TimeRange,
                        batch_size: int = STREAM_BATCH) -> Generator[list[PingRecord], None, None]:
    """:func:`ping_batches` in a session of its own over one read-only snapshot (for response bodies)."""
    with read_snapshot(engine) as session:
        yield from ping_batches(session, source=source, time_range=time_range, batch_size=batch_size)
