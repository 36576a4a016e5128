"""Account tables.

Invariants: tokens and invitation codes are stored only as SHA-256 hex digests; a member's data key
exists only wrapped by the master key, and erasure sets ``wrapped_key`` to NULL (crypto-shredding) while
keeping ``no`` so that pseudonymous references stay valid; ``verified_at`` is set once and never cleared;
an invitation's ``used_at``/``used_by`` are set once, by the sign-up that redeemed it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from coop.accounts.roles import Role as Role  # re-exported for older imports
from coop.kit.db import UTCDateTime


class Account(SQLModel, table=True):
    """A person or organisation; ``id`` (a UUID string) is the public ``account_id``."""

    __tablename__ = "account"

    id: str = Field(primary_key=True, max_length=36)
    display_name: str | None = Field(default=None, max_length=200)
    organisation: str | None = Field(default=None, max_length=200)
    roles: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
    terms_version: str | None = Field(default=None, max_length=50)
    collection_paused: bool = Field(default=False)
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """When the co-op accepted the account as one real person (invitation code or an admin); NULL = not
    verified: the member's data is stored and theirs, but never counted in sealed tables."""


class ApiToken(SQLModel, table=True):
    """An opaque bearer token, known to the server only by its SHA-256 digest."""

    __tablename__ = "api_token"

    id: str = Field(primary_key=True, max_length=36)
    account_id: str = Field(foreign_key="account.id", index=True, max_length=36)
    token_hash: str = Field(max_length=64, unique=True)
    label: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MemberKey(SQLModel, table=True):
    """A member's compact number (used by pings) and wrapped data key; NULL key = shredded."""

    __tablename__ = "member_key"

    no: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id", unique=True, max_length=36)
    wrapped_key: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    created_at: datetime = Field(sa_type=UTCDateTime)
    shredded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Invitation(SQLModel, table=True):
    """A single-use invitation code, known to the server only by its SHA-256 digest.

    Codes issued by one call share a ``batch_id`` (the subject of the audit event) and ``expires_at``.
    """

    __tablename__ = "invitation"

    id: str = Field(primary_key=True, max_length=36)
    batch_id: str = Field(max_length=36, index=True)
    code_hash: str = Field(max_length=64, unique=True)
    created_by: str | None = Field(default=None, foreign_key="account.id", max_length=36)
    """The admin who issued it; NULL when issued on the server's command line."""
    note: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by: str | None = Field(default=None, foreign_key="account.id", max_length=36)
