"""Reading the audit trail (board only): every recorded decision, oldest first, keyset-paginated.

Invariant: read-only; events are written only by ``coop.kit.audit.record_audit`` and never change. A
member's private actions (``coop.kit.audit.MEMBER_PRIVATE_ACTION_PREFIXES``) are not governance and never
appear here.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from coop.kit.audit import MEMBER_PRIVATE_ACTION_PREFIXES, AuditEvent
from coop.kit.pagination import keyset_page
from coop.licensing.schemas import AuditEventPublic


def list_audit_events(session: Session, *, subject_id: str | None, limit: int,
                      cursor: str | None) -> tuple[list[AuditEventPublic], str | None]:
    """Events about ``subject_id`` (every subject when None), in the order they were recorded."""
    query = select(AuditEvent).where(
        sa.not_(sa.or_(*(col(AuditEvent.action).startswith(prefix, autoescape=True) for prefix in MEMBER_PRIVATE_ACTION_PREFIXES))))
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == subject_id)
    rows, next_cursor = keyset_page(session, query, order=[col(AuditEvent.at), col(AuditEvent.id)],
                                    limit=limit, cursor=cursor)
    items = [AuditEventPublic(event_id=row.id, at=row.at, actor_id=row.actor_id, action=row.action,
                              subject_type=row.subject_type, subject_id=row.subject_id, detail=row.detail)
             for row in rows]
    return items, next_cursor
