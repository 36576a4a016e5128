"""Licensing tables.

Invariants: one vote per (request, voter); a request has at most one licence (``licence.request_id``
is unique); ``paid_pence`` equals the sum of the licence's payments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from coop.kit.db import UTCDateTime


class LicenceRequest(SQLModel, table=True):
    __tablename__ = "licence_request"

    id: str = Field(primary_key=True, max_length=36)
    requester_id: str = Field(foreign_key="account.id", index=True, max_length=36)
    title: str = Field(max_length=300)
    purpose_code: str = Field(foreign_key="purpose.code", max_length=60)
    organisation: str = Field(max_length=200)
    public_benefit: str = Field(sa_type=sa.Text)
    description: str = Field(sa_type=sa.Text)
    dataset: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    duration_days: int
    fee_pence: int = Field(sa_type=sa.BigInteger)
    status: str = Field(default="submitted", max_length=20, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Vote(SQLModel, table=True):
    __tablename__ = "vote"
    __table_args__ = (sa.UniqueConstraint("request_id", "voter_id", name="uq_vote_request_voter"),)

    id: str = Field(primary_key=True, max_length=36)
    request_id: str = Field(foreign_key="licence_request.id", index=True, max_length=36)
    voter_id: str = Field(foreign_key="account.id", max_length=36)
    decision: str = Field(max_length=20)
    comment: str | None = Field(default=None, sa_type=sa.Text)
    conflict_of_interest: bool = Field(default=False)
    at: datetime = Field(sa_type=UTCDateTime)


class Licence(SQLModel, table=True):
    __tablename__ = "licence"

    id: str = Field(primary_key=True, max_length=36)
    request_id: str = Field(foreign_key="licence_request.id", unique=True, max_length=36)
    licensee_id: str = Field(foreign_key="account.id", index=True, max_length=36)
    organisation: str = Field(max_length=200)
    purpose_code: str = Field(foreign_key="purpose.code", max_length=60)
    dataset: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    k: int
    fee_pence: int = Field(sa_type=sa.BigInteger)
    paid_pence: int = Field(default=0, sa_type=sa.BigInteger)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoke_reason: str | None = Field(default=None, sa_type=sa.Text)
    valid_from: datetime = Field(sa_type=UTCDateTime)
    valid_until: datetime = Field(sa_type=UTCDateTime)
    terms_version: str = Field(max_length=50)
    document: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    jws: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=UTCDateTime)
    family_id: str | None = Field(default=None, foreign_key="table_family.id", index=True, max_length=36)
    """The table family whose sealed rows the licence's releases read (set at issuance)."""


class LicencePayment(SQLModel, table=True):
    __tablename__ = "licence_payment"

    id: str = Field(primary_key=True, max_length=36)
    licence_id: str = Field(foreign_key="licence.id", index=True, max_length=36)
    amount_pence: int = Field(sa_type=sa.BigInteger)
    reference: str = Field(max_length=200)
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)
    recorded_by: str = Field(foreign_key="account.id", max_length=36)
    ledger_seq: int | None = Field(default=None)
