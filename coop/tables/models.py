"""Sealed-table tables: families, sealed buckets, their cells and pairs, and members' input per day.

Invariants:
- A family ``(kind, purpose_code, time_bucket, resolution)`` exists once (unique) and its noise
  parameters never change after it is opened; families are never deleted (their budget stays spent).
- A bucket is visible only once its ``sealed_bucket`` row exists, and that row is written in the same
  transaction as the bucket's ``sealed_cell`` / ``sealed_pair`` rows and its ``sealed_contribution``
  increments, so a bucket is sealed whole or not at all, and only once (the primary key).
- ``sealed_contribution`` holds no location: per (family, member, UTC day) how many of that day's
  buckets took the member's data as input (a week bucket counts on its Monday). Erasure keeps it: it is
  the ledger's weight and the member's privacy-loss record.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from coop.kit.db import UTCDateTime


class TableFamily(SQLModel, table=True):
    """One kind of aggregate for one purpose, time bucket and resolution, with its fixed noise plan."""

    __tablename__ = "table_family"
    __table_args__ = (sa.UniqueConstraint("kind", "purpose_code", "time_bucket", "resolution",
                                          name="uq_table_family_key"),)

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=20)
    purpose_code: str = Field(foreign_key="purpose.code", max_length=60)
    time_bucket: str = Field(max_length=10)
    resolution: int
    epsilon_per_day: float
    delta: float
    k_floor: int
    tau: int
    sigma: float
    contribution_bound: int
    coarsest_resolution: int
    mechanism: str = Field(max_length=200)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    opened_by_licence_id: str | None = Field(default=None, max_length=36)
    """The licence whose issuance opened the family (None for families made by the 0005 migration's
    backfill of older licences); not a foreign key, to keep licence <-> family acyclic."""
    seal_from: date
    """The first day sealed: the earliest start of the family's licences' periods (only ever lowered)."""


class SealedBucket(SQLModel, table=True):
    """A sealed bucket of a family: its rows are final and visible."""

    __tablename__ = "sealed_bucket"

    family_id: str = Field(foreign_key="table_family.id", primary_key=True, max_length=36)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    bucket_end: datetime = Field(sa_type=UTCDateTime)
    sealed_at: datetime = Field(sa_type=UTCDateTime)


class SealedCell(SQLModel, table=True):
    """One published (noisy, ``>= tau``) count of a presence or stays family."""

    __tablename__ = "sealed_cell"

    family_id: str = Field(foreign_key="table_family.id", primary_key=True, max_length=36)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    resolution: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    cell: int = Field(sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    members: int


class SealedPair(SQLModel, table=True):
    """One published (noisy, ``>= tau``) origin-destination count of an od family."""

    __tablename__ = "sealed_pair"

    family_id: str = Field(foreign_key="table_family.id", primary_key=True, max_length=36)
    bucket_start: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    resolution: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    origin: int = Field(sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    destination: int = Field(sa_type=sa.BigInteger, primary_key=True,
                             sa_column_kwargs={"autoincrement": False})
    members: int


class SealedContribution(SQLModel, table=True):
    """How many buckets of one UTC day took one member's data as input, per family."""

    __tablename__ = "sealed_contribution"
    __table_args__ = (sa.Index("ix_sealed_contribution_member_day", "member_id", "day"),)

    family_id: str = Field(foreign_key="table_family.id", primary_key=True, max_length=36)
    member_id: str = Field(foreign_key="account.id", primary_key=True, max_length=36)
    day: date = Field(primary_key=True)
    buckets: int
