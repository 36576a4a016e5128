"""Stored responses of POSTs made with an ``Idempotency-Key`` (see ``coop.kit.idempotency``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from coop.kit.db import UTCDateTime


class IdempotencyRecord(SQLModel, table=True):
    """One (caller, scope, key): the request's digest and the response first given for it."""

    __tablename__ = "idempotency_record"

    account_id: str = Field(primary_key=True, max_length=36)
    scope: str = Field(primary_key=True, max_length=120)
    key: str = Field(primary_key=True, max_length=200)
    request_sha256: str = Field(max_length=64)
    status_code: int
    response: Any = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
