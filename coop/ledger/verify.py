"""Verification of the whole chain, streamed (constant memory, no ORM objects per row).

Invariant checked for every entry, in ``seq`` order: seq is the previous seq + 1 (1 first); prev_hash
is the previous entry's stored hash (the genesis hash first); it has at least two postings, each
nonzero, summing to zero; and its stored hash equals the hash recomputed from its content. The first
entry failing any check is ``first_bad_seq``; counting continues to the end.

Speed: entries and postings are read straight from the driver as two streams ordered by seq and
merged here (no ORM objects, no per-row SQLAlchemy processing); the canonical JSON of an entry is
spelled out by :func:`canonical_entry_json` (the same bytes as ``coop.kit.crypto.canonical_json``,
property-tested) instead of building dicts and sorting keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from coop.ledger.journal import GENESIS_HASH

STREAM_BATCH = 10_000
_quote = json.encoder.encode_basestring
"""The string encoder ``json.dumps(..., ensure_ascii=False)`` uses (the C one when available)."""


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head_hash: str
    """The newest entry's stored hash (the genesis hash when the ledger is empty)."""
    first_bad_seq: int | None
    reason: str | None


def canonical_entry_json(*, seq: int, entry_id: str, at: str, kind: str, memo: str,
                         postings: list[tuple[str, int]]) -> str:
    """``canonical_json(entry_document(...))`` as text, spelled out: keys in sorted order, no spaces."""
    lines = ",".join(f'{{"account":{_quote(account)},"amount_pence":{amount}}}' for account, amount in postings)
    return (f'{{"at":{_quote(at)},"entry_id":{_quote(entry_id)},"kind":{_quote(kind)},"memo":{_quote(memo)},'
            f'"postings":[{lines}],"seq":{seq}}}')


def _rfc3339(value: datetime) -> str:
    """As ``coop.kit.timeutil.rfc3339``; a naive value (SQLite) is UTC already."""
    if value.tzinfo is None:
        return value.isoformat() + "Z"
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _execute(connection: Connection, sql: str, *, name: str) -> Any:
    """A driver cursor that has run ``sql`` (a server-side cursor on PostgreSQL, so rows stream)."""
    raw: Any = connection.connection.dbapi_connection
    cursor = raw.cursor(name=name) if connection.dialect.name == "postgresql" else raw.cursor()
    cursor.execute(sql)
    return cursor


def _rows(cursor: Any) -> Iterator[tuple[Any, ...]]:
    while batch := cursor.fetchmany(STREAM_BATCH):
        yield from batch


def _problem(*, seq: int, expected_seq: int, prev_hash: str, expected_prev: str, stored_hash: str,
             recomputed: str, amounts: list[int]) -> str | None:
    if seq != expected_seq:
        return f"expected seq {expected_seq}, found {seq}"
    if prev_hash != expected_prev:
        return "prev_hash does not match the previous entry's hash"
    if len(amounts) < 2 or 0 in amounts:
        return "an entry needs at least two nonzero postings"
    if sum(amounts) != 0:
        return f"postings sum to {sum(amounts)}, not 0"
    if recomputed != stored_hash:
        return "stored hash does not match the entry's content"
    return None


ENTRIES_SQL = "SELECT seq, id, at, kind, memo, prev_hash, hash FROM ledger_entry ORDER BY seq"
POSTINGS_SQL = "SELECT entry_seq, account_code, amount_pence FROM ledger_posting ORDER BY entry_seq, line"


def verify_chain(connection: Connection) -> ChainReport:
    """Recompute and check every entry (see the module docstring)."""
    # The entries query runs first. An entry and its postings commit together, so even where each
    # statement sees its own snapshot (READ COMMITTED, SQLite autocommit) the postings stream can only
    # be newer: postings of entries not in the entries stream are skipped, never the other way round.
    entry_cursor = _execute(connection, ENTRIES_SQL, name="ledger_verify_entries")
    try:
        posting_cursor = _execute(connection, POSTINGS_SQL, name="ledger_verify_postings")
        try:
            return check_rows(_rows(entry_cursor), _rows(posting_cursor))
        finally:
            posting_cursor.close()
    finally:
        entry_cursor.close()


def check_rows(entry_rows: Iterator[tuple[Any, ...]], posting_rows: Iterator[tuple[Any, ...]]) -> ChainReport:
    canonical, sha256, parse = canonical_entry_json, hashlib.sha256, datetime.fromisoformat
    count, expected_prev = 0, GENESIS_HASH
    first_bad: int | None = None
    reason: str | None = None
    pending = next(posting_rows, None)
    for seq, entry_id, at, kind, memo, prev_hash, stored_hash in entry_rows:
        count += 1
        postings: list[tuple[str, int]] = []
        amounts: list[int] = []
        while pending is not None and pending[0] <= seq:
            if pending[0] == seq:
                postings.append((pending[1], pending[2]))
                amounts.append(pending[2])
            pending = next(posting_rows, None)
        try:
            at_text = _rfc3339(parse(at) if isinstance(at, str) else at)  # SQLite hands back text
        except (TypeError, ValueError):  # not a time at all: edited outside the app; the hash will differ
            at_text = str(at)
        document = canonical(seq=seq, entry_id=entry_id, at=at_text, kind=kind, memo=memo, postings=postings)
        recomputed = sha256((prev_hash + document).encode("utf-8")).hexdigest()
        if first_bad is None and (recomputed != stored_hash or prev_hash != expected_prev or seq != count
                                  or len(amounts) < 2 or 0 in amounts or sum(amounts) != 0):
            first_bad = seq
            reason = _problem(seq=seq, expected_seq=count, prev_hash=prev_hash, expected_prev=expected_prev,
                              stored_hash=stored_hash, recomputed=recomputed, amounts=amounts)
        expected_prev = stored_hash
    return ChainReport(ok=first_bad is None, entries=count, head_hash=expected_prev, first_bad_seq=first_bad,
                       reason=reason)
