"""Reading the ledger (accounts, entries, verification, the signed head) and recording licence payments.

Invariants: reads never write; balances are debits minus credits, so over all accounts they sum to 0;
the signed head is a JWS by the co-op key over ``{"seq", "hash", "at", "entries"}`` as read in the
caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from coop.kit.crypto import Keyring
from coop.kit.errors import InvalidInput
from coop.kit.pagination import decode_cursor, keyset_page
from coop.kit.timeutil import rfc3339, utcnow
from coop.ledger import repository
from coop.ledger.journal import MAX_SEQ, PostedEntry, ledger_head
from coop.ledger.models import LedgerAccount, LedgerEntry, LedgerPosting
from coop.ledger.postings import record_licence_payment
from coop.ledger.schemas import AccountPublic, EntryPublic, HeadPublic, PostingPublic, VerifyPublic
from coop.ledger.verify import verify_chain


def posted_entry_public(entry: PostedEntry) -> EntryPublic:
    return EntryPublic(seq=entry.seq, entry_id=entry.entry_id, at=rfc3339(entry.at), kind=entry.kind,
                       memo=entry.memo, prev_hash=entry.prev_hash, hash=entry.hash,
                       postings=[PostingPublic(account=account, amount_pence=amount)
                                 for account, amount in entry.postings])


def receive_licence_payment(session: Session, *, licence_id: str, amount_pence: int, reference: str,
                            recorded_by: str, received_at: datetime | None = None) -> EntryPublic:
    """Record a licence payment (see ``coop.ledger.postings``) and return its ledger entry."""
    entry = record_licence_payment(session, licence_id=licence_id, amount_pence=amount_pence,
                                   reference=reference, recorded_by=recorded_by, received_at=received_at)
    return posted_entry_public(entry)


def list_accounts(session: Session, *, limit: int, cursor: str | None) -> tuple[list[AccountPublic], str | None]:
    """One page of accounts by code, with balances."""
    rows, next_cursor = keyset_page(session, select(LedgerAccount), order=[col(LedgerAccount.code)],
                                    limit=limit, cursor=cursor)
    totals = repository.balances(session, [row.code for row in rows])
    return [AccountPublic(code=row.code, name=row.name, type=row.type, balance_pence=totals[row.code])
            for row in rows], next_cursor


def list_entries(session: Session, *, after_seq: int | None, limit: int,
                 cursor: str | None) -> tuple[list[EntryPublic], str | None]:
    """One page of entries in seq order, after ``after_seq`` and after the cursor."""
    key = decode_cursor(cursor, arity=1)
    if key is not None and not (type(key[0]) is int and 0 <= key[0] <= MAX_SEQ):
        raise InvalidInput("malformed cursor")
    query = select(LedgerEntry)
    if after_seq is not None:
        query = query.where(col(LedgerEntry.seq) > after_seq)
    rows, next_cursor = keyset_page(session, query, order=[col(LedgerEntry.seq)], limit=limit, cursor=cursor)
    lines: dict[int, list[PostingPublic]] = defaultdict(list)
    if rows:
        postings = session.exec(
            select(LedgerPosting.entry_seq, LedgerPosting.account_code, LedgerPosting.amount_pence)
            .where(col(LedgerPosting.entry_seq).between(rows[0].seq, rows[-1].seq))
            .order_by(col(LedgerPosting.entry_seq), col(LedgerPosting.line))
        ).all()
        for seq, account, amount in postings:
            lines[seq].append(PostingPublic(account=account, amount_pence=amount))
    return [EntryPublic(seq=row.seq, entry_id=row.id, at=rfc3339(row.at), kind=row.kind, memo=row.memo,
                        postings=lines[row.seq], prev_hash=row.prev_hash, hash=row.hash)
            for row in rows], next_cursor


def verify_ledger(session: Session) -> VerifyPublic:
    report = verify_chain(session.connection())
    return VerifyPublic(ok=report.ok, entries=report.entries, head_hash=report.head_hash,
                        first_bad_seq=report.first_bad_seq)


def signed_head(session: Session, *, keyring: Keyring) -> HeadPublic:
    """The newest entry's seq and hash and the number of entries, signed now."""
    seq, head_hash = ledger_head(session)
    entries = int(session.exec(select(sa.func.count()).select_from(LedgerEntry)).one())
    payload = {"seq": seq, "hash": head_hash, "at": rfc3339(utcnow()), "entries": entries}
    return HeadPublic(**payload, jws=keyring.sign_jws(payload))
