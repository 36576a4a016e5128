"""The journal: the one way anything is written to the ledger (:func:`post_entry`).

Invariants:
- Entries are append-only; nothing in the code updates or deletes an entry or a posting (and the
  database refuses it, see ``coop.ledger.guard``). Corrections are new entries.
- Each entry has at least two postings, every amount is a nonzero integer number of pence (positive =
  debit, negative = credit) and they sum to zero; every account exists (``member:<id>`` accounts and the
  co-op's own chart are created on first use).
- ``seq`` runs 1, 2, 3... with no gaps; ``prev_hash`` is the previous entry's ``hash`` (the genesis hash,
  64 zeros, for seq 1); ``hash = sha256(prev_hash || canonical JSON of the entry)`` where the entry is
  ``{"seq", "entry_id", "at", "kind", "memo", "postings": [{"account", "amount_pence"}]}``: exactly the
  fields ``GET /v1/ledger/entries`` publishes, so an auditor recomputes the hash from the API alone.
- Writers are serialised: on PostgreSQL by a transaction-level advisory lock taken before the head is
  read (held to commit); on SQLite by ``BEGIN IMMEDIATE``. So the chain stays linear under concurrency.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from coop.accounts.models import Account
from coop.kit.crypto import canonical_json
from coop.kit.timeutil import as_utc, rfc3339, utcnow
from coop.ledger.chart import CHART, LIABILITY, member_account_code, member_id_of
from coop.ledger.models import LedgerAccount, LedgerEntry, LedgerPosting

GENESIS_HASH = "0" * 64
LEDGER_LOCK_KEY = 0x636F6F702D6C6467
"""The advisory lock id that serialises ledger writers on PostgreSQL ("coop-ldg")."""

MAX_SEQ = 2**31 - 1
"""``ledger_entry.seq`` is a 32-bit integer column."""
MAX_KIND_LENGTH = 40
MAX_ACCOUNT_LENGTH = 60


class InvalidPosting(ValueError):
    """A caller asked for an entry that would break the ledger's invariants (a bug, not user input)."""


@dataclass(frozen=True)
class PostedEntry:
    """An entry as stored and hashed."""

    seq: int
    entry_id: str
    at: datetime
    kind: str
    memo: str
    postings: tuple[tuple[str, int], ...]
    prev_hash: str
    hash: str


def entry_document(*, seq: int, entry_id: str, at_rfc3339: str, kind: str, memo: str,
                   postings: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """The JSON object whose canonical form is hashed (and which the entries API publishes)."""
    return {"seq": seq, "entry_id": entry_id, "at": at_rfc3339, "kind": kind, "memo": memo,
            "postings": [{"account": account, "amount_pence": amount} for account, amount in postings]}


def entry_hash(prev_hash: str, document: dict[str, Any]) -> str:
    """sha256(prev_hash as ASCII hex || canonical JSON of ``document``), as hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(document)).hexdigest()


def lock_ledger(session: Session) -> None:
    """Serialise ledger writers until this transaction ends (a no-op on SQLite: BEGIN IMMEDIATE does it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEDGER_LOCK_KEY})


def ledger_head(session: Session) -> tuple[int, str]:
    """``(seq, hash)`` of the newest entry, or ``(0, GENESIS_HASH)`` for an empty ledger."""
    row = session.exec(select(LedgerEntry.seq, LedgerEntry.hash)
                       .order_by(col(LedgerEntry.seq).desc()).limit(1)).first()
    return (0, GENESIS_HASH) if row is None else (row[0], row[1])


def check_postings(postings: Sequence[tuple[str, int]]) -> None:
    """Raise ``InvalidPosting`` unless the postings make a balanced entry."""
    if len(postings) < 2:
        raise InvalidPosting("an entry needs at least two postings")
    for account, amount in postings:
        if not isinstance(account, str) or not account or len(account) > MAX_ACCOUNT_LENGTH:
            raise InvalidPosting(f"bad account code {account!r}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
            raise InvalidPosting(f"posting to {account} must be a nonzero integer number of pence")
    total = sum(amount for _, amount in postings)
    if total != 0:
        raise InvalidPosting(f"postings sum to {total}, not 0")


def _chunks(values: list[str], size: int = 1000) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def ensure_accounts(session: Session, codes: set[str]) -> None:
    """Create any missing chart or ``member:<id>`` account; anything else unknown is an error."""
    missing = set(codes)
    for chunk in _chunks(sorted(codes)):
        missing -= set(session.exec(select(LedgerAccount.code).where(col(LedgerAccount.code).in_(chunk))).all())
    if not missing:
        return
    member_ids = sorted({member_id for code in missing if (member_id := member_id_of(code)) is not None})
    known_members: set[str] = set()
    for chunk in _chunks(member_ids):
        known_members |= set(session.exec(select(Account.id).where(col(Account.id).in_(chunk))).all())
    rows: list[dict[str, str]] = []
    for code in sorted(missing):
        member_id = member_id_of(code)
        if code in CHART:
            name, kind = CHART[code]
        elif member_id is not None and member_id in known_members:
            name, kind = f"Dividends owed to member {member_id}", LIABILITY
        else:
            raise InvalidPosting(f"no ledger account {code!r}")
        rows.append({"code": code, "name": name, "type": kind})
    session.execute(sa.insert(LedgerAccount), rows)


def post_entry(session: Session, *, kind: str, memo: str, postings: Sequence[tuple[str, int]],
               at: datetime | None = None) -> PostedEntry:
    """Append one balanced entry to the chain (flushed, not committed) and return it."""
    if not kind or len(kind) > MAX_KIND_LENGTH:
        raise InvalidPosting(f"bad entry kind {kind!r}")
    lines = tuple((account, amount) for account, amount in postings)
    check_postings(lines)
    at = as_utc(at or utcnow())
    lock_ledger(session)
    ensure_accounts(session, {account for account, _ in lines})
    head_seq, prev_hash = ledger_head(session)
    seq, entry_id = head_seq + 1, str(uuid.uuid4())
    document = entry_document(seq=seq, entry_id=entry_id, at_rfc3339=rfc3339(at), kind=kind, memo=memo,
                              postings=lines)
    digest = entry_hash(prev_hash, document)
    session.add(LedgerEntry(seq=seq, id=entry_id, at=at, kind=kind, memo=memo, prev_hash=prev_hash,
                            hash=digest))
    session.flush()
    session.execute(sa.insert(LedgerPosting), [
        {"entry_seq": seq, "line": line, "account_code": account, "amount_pence": amount}
        for line, (account, amount) in enumerate(lines, start=1)
    ])
    return PostedEntry(seq=seq, entry_id=entry_id, at=at, kind=kind, memo=memo, postings=lines,
                       prev_hash=prev_hash, hash=digest)


def member_balance(session: Session, member_id: str) -> int:
    """What the co-op owes the member: minus the sum of the postings on ``member:<id>``."""
    total = session.exec(select(sa.func.coalesce(sa.func.sum(LedgerPosting.amount_pence), 0))
                         .where(LedgerPosting.account_code == member_account_code(member_id))).one()
    return -int(total)
