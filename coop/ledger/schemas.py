"""Request and response shapes of the ledger, dividends, payouts and member statements.

Money is integer pence (strict ints: ``10.0`` is refused); ``at`` on an entry is the exact RFC 3339
string that was hashed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_PENCE = 10**12
"""£10 billion: far above any real movement, far below a 64-bit overflow."""

PositivePence = Annotated[int, Field(strict=True, gt=0, le=MAX_PENCE)]
Reference = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
                                 description="Printable text, e.g. the bank transfer's reference")]
RFC3339 = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class PaymentCreate(BaseModel):
    """A licence fee payment received."""

    model_config = ConfigDict(extra="forbid")

    amount_pence: PositivePence
    reference: Reference


class PayoutCreate(BaseModel):
    """Money paid out to a member from what the co-op owes them."""

    model_config = ConfigDict(extra="forbid")

    amount_pence: PositivePence
    reference: Reference


class DividendCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_start: date
    period_end: date = Field(description="Exclusive")
    reserve_bps: int | None = Field(default=None, strict=True, ge=0, le=10000,
                                    description="Share of the pool kept in reserve, in basis points "
                                                "(default: the COOP_RESERVE_BPS setting)")

    @model_validator(mode="after")
    def _period_not_empty(self) -> DividendCreate:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


class PostingPublic(BaseModel):
    account: str
    amount_pence: int = Field(description="Positive for a debit, negative for a credit")


class EntryPublic(BaseModel):
    seq: int
    entry_id: str
    at: RFC3339
    kind: str
    memo: str
    postings: list[PostingPublic]
    prev_hash: str
    hash: str


class AccountPublic(BaseModel):
    code: str
    name: str
    type: str
    balance_pence: int = Field(description="Sum of the account's postings: debits minus credits")


class VerifyPublic(BaseModel):
    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None


class HeadPublic(BaseModel):
    seq: int
    hash: str
    at: RFC3339 = Field(description="When the head was read and signed")
    entries: int
    jws: str = Field(description="Compact JWS (EdDSA) over {seq, hash, at, entries}")


class DividendPublic(BaseModel):
    dividend_id: str
    period_start: date
    period_end: date
    reserve_bps: int
    pool_pence: int
    reserve_pence: int
    distributed_pence: int
    members: int = Field(description="Members with contribution units in the period")
    ledger_seq: int | None
    declared_at: datetime


class AllocationPublic(BaseModel):
    member_id: str
    contribution_units: int
    amount_pence: int


class PayoutPublic(BaseModel):
    payout_id: str
    member_id: str
    amount_pence: int
    reference: str
    at: datetime
    ledger_seq: int | None


class StatementDividend(BaseModel):
    dividend_id: str
    period_start: date
    period_end: date
    amount_pence: int
    contribution_units: int


class StatementPublic(BaseModel):
    balance_pence: int = Field(description="What the co-op owes the member now")
    dividends: list[StatementDividend]
    payouts: list[PayoutPublic]
