"""``GET /v1/me/export``: everything the co-op holds about one member, as one streamed JSON document.

Invariants:
- Every part is read from one read-only snapshot opened by the body itself (consistent, never blocks
  writers), and every query is filtered by the member's account id or member number.
- No secret leaves: tokens appear as id, label and dates (never their hashes); the data key is used to
  decrypt the member's own zones and pings but never written.
- The small parts come first as one JSON object; ``pings`` is last and streamed batch by batch, so
  memory does not grow with the number of pings. A truncated download is not valid JSON.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from consent.models import ConsentEvent
from consent.privacy_zones import list_zones
from consent.service import list_consents
from consent.state import event_order
from coop.accounts.models import Account, ApiToken
from coop.kit.audit import AuditEvent
from coop.kit.crypto import Keyring
from coop.kit.db import read_snapshot
from coop.kit.errors import NotFound
from coop.kit.pagination import MAX_LIMIT
from coop.kit.timeutil import rfc3339, utcnow
from coop.ledger.chart import member_account_code
from coop.ledger.models import LedgerEntry, LedgerPosting
from coop.ledger.payouts import member_statement
from coop.releases.service import member_usage
from coop.rights.formats import json_array_chunks
from coop.rights.pings import MemberPings, ping_batches
from coop.rights.schemas import EXPORT_FORMAT, EXPORT_FORMAT_VERSION
from coop.rights.timerange import TimeRange

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _time(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def account_part(session: Session, *, member_id: str) -> dict[str, Any]:
    account = session.get(Account, member_id)
    if account is None:
        raise NotFound("no such member")
    return {"account_id": account.id, "roles": list(account.roles), "display_name": account.display_name,
            "organisation": account.organisation, "created_at": _time(account.created_at),
            "terms_version": account.terms_version, "collection_paused": account.collection_paused,
            "erased_at": _time(account.erased_at), "verified_at": _time(account.verified_at)}


def tokens_part(session: Session, *, member_id: str) -> list[dict[str, Any]]:
    rows = session.exec(select(ApiToken).where(ApiToken.account_id == member_id)
                        .order_by(col(ApiToken.created_at), col(ApiToken.id))).all()
    return [{"token_id": row.id, "label": row.label, "created_at": _time(row.created_at),
             "revoked_at": _time(row.revoked_at)} for row in rows]


def consent_events_part(session: Session, *, member_id: str) -> list[dict[str, Any]]:
    rows = session.exec(select(ConsentEvent).where(ConsentEvent.member_id == member_id)
                        .order_by(*event_order())).all()
    return [{"event_id": row.id, "purpose": row.purpose_code, "state": row.state,
             "policy_version": row.policy_version, "at": _time(row.at), "method": row.method,
             "receipt_id": row.receipt_id, "receipt": row.receipt, "jws": row.jws} for row in rows]


def privacy_zones_part(session: Session, *, member_id: str, keyring: Keyring) -> list[dict[str, Any]]:
    zones: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = list_zones(session, member_id=member_id, keyring=keyring, limit=100, cursor=cursor)
        zones.extend(zone.model_dump(mode="json") for zone in page.items)
        if page.next_cursor is None:
            return zones
        cursor = page.next_cursor


def releases_part(session: Session, *, member_id: str) -> list[dict[str, Any]]:
    """The ready releases that counted the member, oldest build first (``GET /v1/me/usage``, every page)."""
    releases: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        items, cursor = member_usage(session, account_id=member_id, limit=MAX_LIMIT, cursor=cursor)
        releases.extend(item.model_dump(mode="json") for item in items)
        if cursor is None:
            return releases


def ledger_part(session: Session, *, member_id: str) -> dict[str, Any]:
    """The member's statement (balance, dividends, payouts) and every posting on their ledger account."""
    code = member_account_code(member_id)
    statement = member_statement(session, member_id=member_id).model_dump(mode="json")
    postings = session.execute(
        sa.select(col(LedgerEntry.seq), col(LedgerEntry.id), col(LedgerEntry.at), col(LedgerEntry.kind),
                  col(LedgerEntry.memo), col(LedgerPosting.amount_pence))
        .join(LedgerPosting, col(LedgerPosting.entry_seq) == col(LedgerEntry.seq))
        .where(col(LedgerPosting.account_code) == code)
        .order_by(col(LedgerEntry.seq), col(LedgerPosting.line))
    ).all()
    return {"account": code, **statement,
            "postings": [{"seq": seq, "entry_id": entry_id, "at": rfc3339(at), "kind": kind, "memo": memo,
                          "amount_pence": amount} for seq, entry_id, at, kind, memo, amount in postings]}


def audit_part(session: Session, *, member_id: str) -> list[dict[str, Any]]:
    """Audit events the member caused or that concern their account (``by``: you or the co-op)."""
    rows = session.exec(
        select(AuditEvent)
        .where(sa.or_(col(AuditEvent.actor_id) == member_id,
                      sa.and_(col(AuditEvent.subject_type) == "account", col(AuditEvent.subject_id) == member_id)))
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    ).all()
    return [{"at": rfc3339(row.at), "action": row.action, "by": "you" if row.actor_id == member_id else "co-op",
             "subject_type": row.subject_type, "subject_id": row.subject_id, "detail": row.detail}
            for row in rows]


def export_head(session: Session, *, member_id: str, keyring: Keyring,
                generated_at: datetime) -> dict[str, Any]:
    """Every part of the export except the pings."""
    return {
        "export": {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION,
                   "generated_at": rfc3339(generated_at), "member_id": member_id},
        "account": account_part(session, member_id=member_id),
        "tokens": tokens_part(session, member_id=member_id),
        "consents": [item.model_dump(mode="json") for item in list_consents(session, member_id=member_id).items],
        "consent_events": consent_events_part(session, member_id=member_id),
        "privacy_zones": privacy_zones_part(session, member_id=member_id, keyring=keyring),
        "releases": releases_part(session, member_id=member_id),
        "ledger": ledger_part(session, member_id=member_id),
        "audit_events": audit_part(session, member_id=member_id),
    }


def export_chunks(engine: Engine, *, member_id: str, source: MemberPings, keyring: Keyring,
                  generated_at: datetime | None = None) -> Generator[str, None, None]:
    """The export document in text chunks, read from one snapshot opened here."""
    with read_snapshot(engine) as session:
        head = export_head(session, member_id=member_id, keyring=keyring,
                           generated_at=generated_at or utcnow())
        yield _dumps(head)[:-1] + ',"pings":'
        yield from json_array_chunks(ping_batches(session, source=source, time_range=TimeRange()))
        yield "}"
