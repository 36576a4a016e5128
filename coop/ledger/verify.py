"""Verification of the whole chain, streamed (constant memory, no ORM objects per row).

Invariant checked for every entry, in ``seq`` order: seq is the previous seq + 1 (1 first); prev_hash
is the previous entry's stored hash (the genesis hash first); it has at least two postings, each
nonzero, summing to zero; and its stored hash equals the hash recomputed from its content. The first
entry failing any check is ``first_bad_seq``; counting continues to the end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from coop.crypto import canonical_json
from coop.ledger.journal import GENESIS_HASH
from coop.ledger.models import LedgerEntry, LedgerPosting
from coop.timeutil import rfc3339

_entries = sa.inspect(LedgerEntry).local_table
_postings = sa.inspect(LedgerPosting).local_table

STREAM_BATCH = 10_000


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    head_hash: str
    """The newest entry's stored hash (the genesis hash when the ledger is empty)."""
    first_bad_seq: int | None
    reason: str | None


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


def verify_chain(connection: Connection) -> ChainReport:
    """Recompute and check every entry (see the module docstring)."""
    query = (
        sa.select(_entries.c.seq, _entries.c.id, _entries.c.at, _entries.c.kind, _entries.c.memo,
                  _entries.c.prev_hash, _entries.c.hash, _postings.c.account_code, _postings.c.amount_pence)
        .select_from(_entries.outerjoin(_postings, _postings.c.entry_seq == _entries.c.seq))
        .order_by(_entries.c.seq, _postings.c.line)
    )
    result = connection.execution_options(stream_results=True, yield_per=STREAM_BATCH).execute(query)
    sha256, dumps = hashlib.sha256, canonical_json
    count, expected_prev = 0, GENESIS_HASH
    first_bad: int | None = None
    reason: str | None = None
    current: tuple[int, str, object, str, str, str, str] | None = None
    postings: list[dict[str, object]] = []
    amounts: list[int] = []

    def finish() -> None:
        nonlocal count, expected_prev, first_bad, reason
        assert current is not None
        seq, entry_id, at, kind, memo, prev_hash, stored_hash = current
        count += 1
        document = {"seq": seq, "entry_id": entry_id, "at": rfc3339(at),  # type: ignore[arg-type]
                    "kind": kind, "memo": memo, "postings": postings}
        recomputed = sha256(prev_hash.encode("ascii") + dumps(document)).hexdigest()
        if first_bad is None:
            problem = _problem(seq=seq, expected_seq=count, prev_hash=prev_hash, expected_prev=expected_prev,
                               stored_hash=stored_hash, recomputed=recomputed, amounts=amounts)
            if problem is not None:
                first_bad, reason = seq, problem
        expected_prev = stored_hash

    for seq, entry_id, at, kind, memo, prev_hash, stored_hash, account, amount in result:
        if current is None or seq != current[0]:
            if current is not None:
                finish()
            current = (seq, entry_id, at, kind, memo, prev_hash, stored_hash)
            postings, amounts = [], []
        if account is not None:
            postings.append({"account": account, "amount_pence": amount})
            amounts.append(amount)
    if current is not None:
        finish()
    result.close()
    return ChainReport(ok=first_bad is None, entries=count, head_hash=expected_prev, first_bad_seq=first_bad,
                       reason=reason)
