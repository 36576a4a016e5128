"""Release tables.

Invariants: a ready release is immutable; releases under one licence never overlap in time;
``release_contribution`` holds each counted member's contribution units (by pseudonymous member number).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from coop.kit.db import UTCDateTime


class Release(SQLModel, table=True):
    __tablename__ = "release"

    id: str = Field(primary_key=True, max_length=36)
    licence_id: str = Field(foreign_key="licence.id", index=True, max_length=36)
    requested_by: str = Field(foreign_key="account.id", max_length=36)
    start: date
    end: date
    status: str = Field(default="queued", max_length=20)
    progress: float = Field(default=0.0)
    created_at: datetime = Field(sa_type=UTCDateTime)
    built_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stats: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    files: list[dict[str, Any]] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    jws: str | None = Field(default=None, sa_type=sa.Text)
    error: str | None = Field(default=None, sa_type=sa.Text)


class ReleaseContribution(SQLModel, table=True):
    __tablename__ = "release_contribution"

    release_id: str = Field(foreign_key="release.id", primary_key=True, max_length=36)
    member_no: int = Field(foreign_key="member_key.no", primary_key=True, index=True)
    units: int


class ReleaseDownload(SQLModel, table=True):
    __tablename__ = "release_download"

    id: str = Field(primary_key=True, max_length=36)
    release_id: str = Field(foreign_key="release.id", index=True, max_length=36)
    account_id: str = Field(foreign_key="account.id", max_length=36)
    file_name: str = Field(max_length=100)
    at: datetime = Field(sa_type=UTCDateTime)
