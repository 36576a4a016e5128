"""Append-only audit trail of decisions (votes, licences, revocations, payments, erasures).

Invariant: actions a member takes over their own private data (``MEMBER_PRIVATE_ACTION_PREFIXES``:
privacy zones, pausing collection) are recorded for the member's own record but are never shown to the
board: a zone is the member's secret, and so are when they made it and how many they hold.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from coop.kit.db import UTCDateTime
from coop.kit.timeutil import utcnow

MEMBER_PRIVATE_ACTION_PREFIXES = ("privacy_zone.", "collection.")


class AuditEvent(SQLModel, table=True):
    """Who did what to which subject, and when. Never updated or deleted."""

    __tablename__ = "audit_event"

    id: str = Field(primary_key=True, max_length=36)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor_id: str | None = Field(default=None, max_length=36)
    action: str = Field(max_length=80)
    subject_type: str = Field(max_length=40)
    subject_id: str = Field(max_length=64, index=True)
    detail: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))


def record_audit(session: Session, *, actor_id: str | None, action: str, subject_type: str,
                 subject_id: str, detail: dict[str, Any] | None = None) -> AuditEvent:
    """Add one audit event to the session (flushed with the caller's transaction)."""
    event = AuditEvent(id=str(uuid.uuid4()), at=utcnow(), actor_id=actor_id, action=action,
                       subject_type=subject_type, subject_id=subject_id, detail=detail or {})
    session.add(event)
    return event
