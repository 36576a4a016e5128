"""Current consent, derived from the append-only ``consent_event`` log (latest event per purpose wins)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from consent.models import ConsentEvent

GIVEN, WITHDRAWN, NOT_GIVEN = "given", "withdrawn", "not_given"


def latest_events(session: Session, *, member_id: str) -> dict[str, ConsentEvent]:
    """The newest event per purpose for one member."""
    newest = (select(ConsentEvent.purpose_code, sa.func.max(ConsentEvent.at).label("at"))
              .where(ConsentEvent.member_id == member_id)
              .group_by(col(ConsentEvent.purpose_code))
              .subquery())
    rows = session.exec(
        select(ConsentEvent)
        .join(newest, sa.and_(col(ConsentEvent.purpose_code) == newest.c.purpose_code,
                              col(ConsentEvent.at) == newest.c.at))
        .where(ConsentEvent.member_id == member_id)
    ).all()
    return {row.purpose_code: row for row in rows}


def gives_any_purpose(session: Session, *, member_id: str) -> bool:
    """True when at least one purpose's latest event is ``given`` (the ingest gate)."""
    return any(event.state == GIVEN for event in latest_events(session, member_id=member_id).values())
