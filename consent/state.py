"""Current and past consent, derived from the append-only ``consent_event`` log.

Invariants:
- State is never stored in place: the latest event per (member, purpose) decides it; no event → ``not_given``.
- Events are ordered by ``(at, withdrawal last, id)``: if two events of one purpose share a timestamp
  the withdrawal counts as the later one (the privacy-protective reading), and the event id breaks any
  remaining tie, so every reader (gate, listing, intervals) sees the same order.
- Consent intervals are half-open ``[given_at, withdrawn_at)``; ``None`` as the end means still given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from consent.models import ConsentEvent

GIVEN, WITHDRAWN, NOT_GIVEN = "given", "withdrawn", "not_given"

Interval = tuple[datetime, datetime | None]


def _withdrawal_last() -> sa.ColumnElement[int]:
    """0 for a giving, 1 for a withdrawal: the tie-break between events with the same ``at``."""
    return sa.case((col(ConsentEvent.state) == WITHDRAWN, 1), else_=0)


def event_order() -> list[Any]:
    """The one chronological order of consent events (ascending)."""
    return [col(ConsentEvent.at), _withdrawal_last(), col(ConsentEvent.id)]


def newest_first() -> list[sa.UnaryExpression[Any]]:
    """The reverse of :func:`event_order`: the latest event first."""
    return [col(ConsentEvent.at).desc(), _withdrawal_last().desc(), col(ConsentEvent.id).desc()]


def _ranked(member_id: Any) -> sa.Subquery:
    """The member's events numbered per purpose, 1 = the latest (see :func:`newest_first`)."""
    rank = sa.func.row_number().over(partition_by=col(ConsentEvent.purpose_code), order_by=newest_first())
    return (sa.select(col(ConsentEvent.id).label("id"), col(ConsentEvent.purpose_code).label("purpose_code"),
                      col(ConsentEvent.state).label("state"), rank.label("rank"))
            .where(col(ConsentEvent.member_id) == member_id)
            .subquery())


def _latest_states_query() -> sa.Select[Any]:
    ranked = _ranked(sa.bindparam("member_id"))
    return sa.select(ranked.c.purpose_code, ranked.c.state).where(ranked.c.rank == 1)


# Built once: the ingest gate runs it for every batch, and building it costs more than running it.
_LATEST_STATES = _latest_states_query()


def latest_events(session: Session, *, member_id: str) -> dict[str, ConsentEvent]:
    """The newest event per purpose for one member (purposes without events are absent)."""
    ranked = _ranked(member_id)
    rows = session.exec(
        select(ConsentEvent).join(ranked, col(ConsentEvent.id) == ranked.c.id).where(ranked.c.rank == 1)
    ).all()
    return {row.purpose_code: row for row in rows}


def latest_states(session: Session, *, member_id: str) -> dict[str, str]:
    """The current state per purpose the member ever acted on (no receipts loaded: the cheap read)."""
    rows = session.connection().execute(_LATEST_STATES, {"member_id": member_id}).all()
    return {str(code): str(state) for code, state in rows}


def latest_event(session: Session, *, member_id: str, purpose_code: str) -> ConsentEvent | None:
    """The newest event of one purpose for one member, or None if they never acted on it."""
    return session.exec(
        select(ConsentEvent)
        .where(col(ConsentEvent.member_id) == member_id, col(ConsentEvent.purpose_code) == purpose_code)
        .order_by(*newest_first())
        .limit(1)
    ).first()


def state_of(event: ConsentEvent | None) -> str:
    """``given`` / ``withdrawn`` from the latest event, ``not_given`` when there is none."""
    return NOT_GIVEN if event is None else event.state


def gives_any_purpose(session: Session, *, member_id: str) -> bool:
    """True when at least one purpose's latest event is ``given`` (the ingest gate)."""
    return GIVEN in latest_states(session, member_id=member_id).values()


def intervals_from_events(events: list[tuple[datetime, str]]) -> list[Interval]:
    """Half-open given-intervals from ``(at, state)`` pairs already in :func:`event_order`.

    A repeated giving (e.g. re-consent to a new policy version) continues the open interval; a
    withdrawal at the very instant of a giving leaves no (empty) interval.
    """
    intervals: list[Interval] = []
    opened: datetime | None = None
    for at, state in events:
        if state == GIVEN and opened is None:
            opened = at
        elif state == WITHDRAWN and opened is not None:
            if at > opened:
                intervals.append((opened, at))
            opened = None
    if opened is not None:
        intervals.append((opened, None))
    return intervals


def consent_intervals(session: Session, *, member_id: str, purpose_code: str) -> list[Interval]:
    """The half-open intervals ``[start, end)`` during which the member had given ``purpose_code``.

    Oldest first; the last interval's end is ``None`` while consent is still given.
    """
    rows = session.exec(
        select(ConsentEvent.at, ConsentEvent.state)
        .where(col(ConsentEvent.member_id) == member_id, col(ConsentEvent.purpose_code) == purpose_code)
        .order_by(*event_order())
    ).all()
    return intervals_from_events([(at, state) for at, state in rows])
