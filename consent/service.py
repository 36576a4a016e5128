"""Giving and withdrawing consent, receipts, the consent history and the collection pause.

Invariants:
- Every change of consent is a new ``consent_event`` row with its signed receipt; nothing is updated.
- Repeating the current state records nothing: giving what is already given under the same policy
  version, or withdrawing what is not given (withdrawn, or never given), returns the current state.
- A member's consent changes are serialised (row lock on the account on PostgreSQL; SQLite's write
  transactions are serial already), and each purpose's event times strictly increase.
- Only the member sees their events and receipts: anything else is a 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from consent.identifiers import looks_like_purpose_code, looks_like_uuid
from consent.models import ConsentEvent, Purpose
from consent.receipts import build_receipt
from consent.schemas import (
    CollectionPublic,
    ConsentChanged,
    ConsentEventPublic,
    ConsentPublic,
    SignedReceipt,
)
from consent.state import GIVEN, WITHDRAWN, latest_event, latest_events, state_of
from coop.accounts.models import Account
from coop.kit.audit import record_audit
from coop.kit.crypto import Keyring
from coop.kit.errors import Conflict, NotFound
from coop.kit.pagination import Page, keyset_page
from coop.kit.settings import get_settings
from coop.kit.timeutil import utcnow

API_METHOD = "api"
ERASURE_METHOD = "erasure"
MAX_METHOD_LENGTH = 20


def _purpose(session: Session, code: str) -> Purpose:
    purpose = session.get(Purpose, code) if looks_like_purpose_code(code) else None
    if purpose is None:
        raise NotFound(f"no purpose {code!r}; see GET /v1/purposes")
    return purpose


def _lock_member(session: Session, member_id: str) -> Account:
    """The member's account row, locked for the rest of the transaction (serialises consent changes)."""
    account = session.exec(select(Account).where(Account.id == member_id).with_for_update()).first()
    if account is None:
        raise NotFound("no such member")
    return account


def _present(purpose: Purpose, event: ConsentEvent | None) -> ConsentPublic:
    return ConsentPublic(
        purpose=purpose.code, state=state_of(event),
        policy_version=event.policy_version if event else None,
        current_policy_version=purpose.policy_version,
        changed_at=event.at if event else None, receipt_id=event.receipt_id if event else None,
    )


def record_event(session: Session, *, member_id: str, purpose: Purpose, state: str, policy_version: str,
                 method: str, keyring: Keyring, controller_name: str,
                 previous: ConsentEvent | None, at: datetime | None = None) -> ConsentEvent:
    """Append one event (and its signed receipt) after ``previous``, the purpose's latest event.

    ``at`` defaults to now; a caller-supplied time (the demo's simulated clock) is still kept after
    ``previous``, so each purpose's history stays strictly ordered.
    """
    if state not in (GIVEN, WITHDRAWN):
        raise ValueError(f"a consent event is given or withdrawn, not {state!r}")
    if not 0 < len(method) <= MAX_METHOD_LENGTH:
        raise ValueError(f"method must be 1..{MAX_METHOD_LENGTH} characters")
    at = at or utcnow()
    if previous is not None and at <= previous.at:
        at = previous.at + timedelta(microseconds=1)  # keep each purpose's history strictly ordered
    event_id, receipt_id = str(uuid.uuid4()), str(uuid.uuid4())
    receipt = build_receipt(
        record_id=receipt_id, event_id=event_id, member_id=member_id, controller_name=controller_name,
        purpose=purpose, event_type=state, event_time=at, policy_version=policy_version, method=method,
        previous_record_id=previous.receipt_id if previous else None,
    )
    event = ConsentEvent(id=event_id, member_id=member_id, purpose_code=purpose.code, state=state,
                         policy_version=policy_version, at=at, method=method, receipt_id=receipt_id,
                         receipt=receipt, jws=keyring.sign_jws(receipt))
    session.add(event)
    session.flush()
    return event


def set_consent(session: Session, *, member_id: str, purpose_code: str, given: bool, policy_version: str,
                keyring: Keyring, controller_name: str, at: datetime | None = None) -> ConsentChanged:
    """Give or withdraw one purpose; 404 unknown purpose, 409 stale policy version."""
    purpose = _purpose(session, purpose_code)
    if policy_version != purpose.policy_version:
        raise Conflict(f"policy version {policy_version!r} is not the current version of {purpose.code!r} "
                       f"({purpose.policy_version!r}); show the member the current policy and retry")
    _lock_member(session, member_id)
    latest = latest_event(session, member_id=member_id, purpose_code=purpose.code)
    if given:
        repeat = latest is not None and latest.state == GIVEN and latest.policy_version == policy_version
    else:
        repeat = latest is None or latest.state == WITHDRAWN
    if not repeat:
        latest = record_event(session, member_id=member_id, purpose=purpose,
                              state=GIVEN if given else WITHDRAWN, policy_version=policy_version,
                              method=API_METHOD, keyring=keyring, controller_name=controller_name,
                              previous=latest, at=at)
    current = _present(purpose, latest)
    receipt = SignedReceipt(receipt=latest.receipt, jws=latest.jws) if latest else None
    return ConsentChanged(**current.model_dump(), receipt=receipt)


def withdraw_all(session: Session, *, member_id: str, keyring: Keyring, method: str = ERASURE_METHOD,
                 controller_name: str | None = None) -> list[ConsentEvent]:
    """Record ``withdrawn`` (under each purpose's current policy version) for every purpose now given.

    Returns the new events (none when nothing was given). Used by erasure (``method="erasure"``).
    """
    _lock_member(session, member_id)
    controller = controller_name or get_settings().name
    recorded = []
    for code, latest in sorted(latest_events(session, member_id=member_id).items()):
        if latest.state != GIVEN:
            continue
        purpose = _purpose(session, code)
        recorded.append(record_event(session, member_id=member_id, purpose=purpose, state=WITHDRAWN,
                                     policy_version=purpose.policy_version, method=method, keyring=keyring,
                                     controller_name=controller, previous=latest))
    return recorded


def list_consents(session: Session, *, member_id: str) -> Page[ConsentPublic]:
    """One item per purpose (ordered by code), ``not_given`` where the member never acted."""
    latest = latest_events(session, member_id=member_id)
    purposes = session.exec(select(Purpose).order_by(col(Purpose.code))).all()
    return Page(items=[_present(purpose, latest.get(purpose.code)) for purpose in purposes], next_cursor=None)


def list_events(session: Session, *, member_id: str, limit: int,
                cursor: str | None) -> Page[ConsentEventPublic]:
    """One page of the member's consent history, oldest first."""
    query = select(ConsentEvent).where(ConsentEvent.member_id == member_id)
    rows, next_cursor = keyset_page(session, query, order=[col(ConsentEvent.at), col(ConsentEvent.id)],
                                    limit=limit, cursor=cursor)
    items = [ConsentEventPublic(event_id=row.id, purpose=row.purpose_code, state=row.state,
                                policy_version=row.policy_version, at=row.at, method=row.method,
                                receipt_id=row.receipt_id) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


def get_receipt(session: Session, *, member_id: str, receipt_id: str) -> SignedReceipt:
    """The member's own receipt and its JWS; anyone else's (or an unknown id) is a 404."""
    event = None
    if looks_like_uuid(receipt_id):
        event = session.exec(select(ConsentEvent).where(ConsentEvent.receipt_id == receipt_id,
                                                        ConsentEvent.member_id == member_id)).first()
    if event is None:
        raise NotFound("no such receipt")
    return SignedReceipt(receipt=event.receipt, jws=event.jws)


def set_collection_paused(session: Session, *, member_id: str, paused: bool) -> CollectionPublic:
    """Pause or resume collection (while paused, ingest drops the member's pings); idempotent."""
    account = _lock_member(session, member_id)
    if account.collection_paused != paused:
        account.collection_paused = paused
        session.add(account)
        record_audit(session, actor_id=member_id, action="collection.paused" if paused else "collection.resumed",
                     subject_type="account", subject_id=member_id)
        session.flush()
    return CollectionPublic(paused=account.collection_paused)
