"""Queries of the licensing domain.

Invariants: ``lock_request`` and ``lock_licence`` take a row lock (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite every transaction already holds the write lock from ``BEGIN IMMEDIATE``), so
decisions about one request or licence are serialised; listings are keyset-paginated on
``(created_at, id)`` and load votes and licence ids for a whole page in two queries, not one per row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlmodel import Session, col, select

from coop.kit.pagination import keyset_page
from coop.licensing.models import Licence, LicenceRequest, Vote


def lock_request(session: Session, request_id: str) -> LicenceRequest | None:
    query = (select(LicenceRequest).where(LicenceRequest.id == request_id).with_for_update()
             .execution_options(populate_existing=True))
    return session.exec(query).first()


def lock_licence(session: Session, licence_id: str) -> Licence | None:
    query = (select(Licence).where(Licence.id == licence_id).with_for_update()
             .execution_options(populate_existing=True))
    return session.exec(query).first()


def has_voted(session: Session, *, request_id: str, voter_id: str) -> bool:
    query = select(Vote.id).where(Vote.request_id == request_id, Vote.voter_id == voter_id)
    return session.exec(query).first() is not None


def votes_by_request(session: Session, request_ids: Sequence[str]) -> dict[str, list[Vote]]:
    """Each request's votes in the order they were cast."""
    grouped: dict[str, list[Vote]] = defaultdict(list)
    if request_ids:
        query = (select(Vote).where(col(Vote.request_id).in_(request_ids))
                 .order_by(col(Vote.at), col(Vote.id)))
        for vote in session.exec(query):
            grouped[vote.request_id].append(vote)
    return grouped


def licence_ids_by_request(session: Session, request_ids: Sequence[str]) -> dict[str, str]:
    if not request_ids:
        return {}
    query = select(Licence.request_id, Licence.id).where(col(Licence.request_id).in_(request_ids))
    return dict(session.exec(query).all())


def page_requests(session: Session, *, requester_id: str | None, status: str | None, limit: int,
                  cursor: str | None) -> tuple[list[LicenceRequest], str | None]:
    """Requests oldest first; ``requester_id`` None means every requester's."""
    query = select(LicenceRequest)
    if requester_id is not None:
        query = query.where(LicenceRequest.requester_id == requester_id)
    if status is not None:
        query = query.where(LicenceRequest.status == status)
    order = [col(LicenceRequest.created_at), col(LicenceRequest.id)]
    return keyset_page(session, query, order=order, limit=limit, cursor=cursor)


def page_licences(session: Session, *, licensee_id: str | None, limit: int,
                  cursor: str | None) -> tuple[list[Licence], str | None]:
    """Licences oldest first; ``licensee_id`` None means every licensee's."""
    query = select(Licence)
    if licensee_id is not None:
        query = query.where(Licence.licensee_id == licensee_id)
    order = [col(Licence.created_at), col(Licence.id)]
    return keyset_page(session, query, order=order, limit=limit, cursor=cursor)
