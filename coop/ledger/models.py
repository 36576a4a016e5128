"""Ledger tables.

Invariants: entries and postings are append-only; each entry's postings sum to zero; ``seq`` is
gapless from 1 and ``prev_hash`` is unique, so the chain is linear; ``hash`` =
sha256(prev_hash || canonical JSON of the entry).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from coop.kit.db import UTCDateTime


class LedgerAccount(SQLModel, table=True):
    __tablename__ = "ledger_account"

    code: str = Field(primary_key=True, max_length=60)
    name: str = Field(max_length=200)
    type: str = Field(max_length=20)
    """asset | liability | equity | income | expense"""


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entry"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    id: str = Field(unique=True, max_length=36)
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=40)
    memo: str = Field(sa_type=sa.Text)
    prev_hash: str = Field(unique=True, max_length=64)
    hash: str = Field(unique=True, max_length=64)


class LedgerPosting(SQLModel, table=True):
    __tablename__ = "ledger_posting"

    entry_seq: int = Field(foreign_key="ledger_entry.seq", primary_key=True)
    line: int = Field(primary_key=True)
    account_code: str = Field(foreign_key="ledger_account.code", index=True, max_length=60)
    amount_pence: int = Field(sa_type=sa.BigInteger)


class Dividend(SQLModel, table=True):
    __tablename__ = "dividend"

    id: str = Field(primary_key=True, max_length=36)
    period_start: date
    period_end: date
    reserve_bps: int
    pool_pence: int = Field(sa_type=sa.BigInteger)
    reserve_pence: int = Field(sa_type=sa.BigInteger)
    distributed_pence: int = Field(sa_type=sa.BigInteger)
    members: int
    ledger_seq: int | None = Field(default=None)
    declared_by: str = Field(foreign_key="account.id", max_length=36)
    created_at: datetime = Field(sa_type=UTCDateTime)


class DividendAllocation(SQLModel, table=True):
    __tablename__ = "dividend_allocation"

    dividend_id: str = Field(foreign_key="dividend.id", primary_key=True, max_length=36)
    member_id: str = Field(foreign_key="account.id", primary_key=True, index=True, max_length=36)
    contribution_units: int
    amount_pence: int = Field(sa_type=sa.BigInteger)


class Payout(SQLModel, table=True):
    __tablename__ = "payout"

    id: str = Field(primary_key=True, max_length=36)
    member_id: str = Field(foreign_key="account.id", index=True, max_length=36)
    amount_pence: int = Field(sa_type=sa.BigInteger)
    reference: str = Field(max_length=200)
    at: datetime = Field(sa_type=UTCDateTime)
    ledger_seq: int | None = Field(default=None)
    recorded_by: str = Field(foreign_key="account.id", max_length=36)
