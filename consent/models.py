"""Consent tables.

Invariants: ``consent_event`` is append-only (state is derived from it, never stored in place) and a
session refuses to flush a change to, or deletion of, a loaded event, or to run an ORM UPDATE/DELETE
on the table; privacy zone geometry exists only encrypted under the member's data key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlmodel import Field, SQLModel

from coop.kit.db import UTCDateTime


class Purpose(SQLModel, table=True):
    """A purpose members may consent to, with its DPV term and current policy version."""

    __tablename__ = "purpose"

    code: str = Field(primary_key=True, max_length=60)
    title: str = Field(max_length=200)
    description: str = Field(sa_type=sa.Text)
    dpv: str = Field(max_length=100)
    policy_version: str = Field(max_length=50)


class ConsentEvent(SQLModel, table=True):
    """One change of a member's consent to one purpose, with its signed receipt."""

    __tablename__ = "consent_event"
    __table_args__ = (sa.Index("ix_consent_event_member_purpose_at", "member_id", "purpose_code", "at"),)

    id: str = Field(primary_key=True, max_length=36)
    member_id: str = Field(foreign_key="account.id", max_length=36)
    purpose_code: str = Field(foreign_key="purpose.code", max_length=60)
    state: str = Field(max_length=20)
    """``given`` or ``withdrawn``."""
    policy_version: str = Field(max_length=50)
    at: datetime = Field(sa_type=UTCDateTime)
    method: str = Field(default="api", max_length=20)
    receipt_id: str = Field(unique=True, max_length=36)
    receipt: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    jws: str = Field(sa_type=sa.Text)


class AppendOnlyViolation(RuntimeError):
    """Code tried to change or delete a consent event: a bug, never a client error."""


@sa.event.listens_for(Session, "before_flush")
def _refuse_changed_consent_events(session: Session, _flush_context: UOWTransaction,
                                   _instances: object) -> None:
    for instance in session.deleted:
        if isinstance(instance, ConsentEvent):
            raise AppendOnlyViolation("consent events are append-only; they are never deleted")
    for instance in session.dirty:
        if isinstance(instance, ConsentEvent) and session.is_modified(instance):
            raise AppendOnlyViolation("consent events are append-only; they are never updated")


@sa.event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_consent_event_writes(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and state.bind_mapper is not None \
            and state.bind_mapper.class_ is ConsentEvent:
        raise AppendOnlyViolation("consent events are append-only; no UPDATE or DELETE")


class PrivacyZone(SQLModel, table=True):
    """A circle where the member's pings are never stored; centre, radius and label encrypted."""

    __tablename__ = "privacy_zone"

    id: str = Field(primary_key=True, max_length=36)
    member_id: str = Field(foreign_key="account.id", index=True, max_length=36)
    blob: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = Field(sa_type=UTCDateTime)
