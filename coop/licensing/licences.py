"""Reading and revoking licences.

Invariants: a modeller sees only the licences issued to them (another's is a 404), the board sees
all; ``status`` is computed by ``status.licence_status`` at read time (never stored) and
``paid_pence`` comes from the licence row; revocation happens once, under the licence's row lock,
and is recorded in the audit trail; a licence's document and signature never change.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlmodel import Session

from coop.accounts.models import Role
from coop.accounts.service import Principal
from coop.kit.audit import record_audit
from coop.kit.errors import Conflict, NotFound
from coop.kit.timeutil import utcnow
from coop.licensing import repository
from coop.licensing.models import Licence
from coop.licensing.schemas import DatasetSpec, LicencePublic, LicenceStatus
from coop.licensing.status import licence_status


def licence_public(licence: Licence, *, now: datetime) -> LicencePublic:
    return LicencePublic(
        licence_id=licence.id, request_id=licence.request_id, licensee_account_id=licence.licensee_id,
        organisation=licence.organisation, purpose=licence.purpose_code,
        dataset=DatasetSpec.model_validate(licence.dataset), k=licence.k, fee_pence=licence.fee_pence,
        paid_pence=licence.paid_pence, status=cast(LicenceStatus, licence_status(licence, now=now)),
        valid_from=licence.valid_from, valid_until=licence.valid_until, terms_version=licence.terms_version,
        family_id=licence.family_id, document=licence.document, jws=licence.jws)


def _sees_every_licence(caller: Principal) -> bool:
    """The board governs licences and the treasurer invoices and collects their fees."""
    return caller.has(Role.BOARD) or caller.has(Role.TREASURER)


def _visible(licence: Licence | None, caller: Principal) -> Licence:
    if licence is None or not (_sees_every_licence(caller) or licence.licensee_id == caller.id):
        raise NotFound("no such licence")
    return licence


def list_licences(session: Session, *, caller: Principal, limit: int,
                  cursor: str | None) -> tuple[list[LicencePublic], str | None]:
    """Board and treasurer: every licence; a modeller: the licences issued to them."""
    licensee_id = None if _sees_every_licence(caller) else caller.id
    rows, next_cursor = repository.page_licences(session, licensee_id=licensee_id, limit=limit, cursor=cursor)
    now = utcnow()
    return [licence_public(row, now=now) for row in rows], next_cursor


def get_licence(session: Session, *, caller: Principal, licence_id: str) -> LicencePublic:
    return licence_public(_visible(session.get(Licence, licence_id), caller), now=utcnow())


def revoke_licence(session: Session, *, caller: Principal, licence_id: str, reason: str) -> LicencePublic:
    """Revoke a licence (board): no further releases or downloads; a second revocation is a 409."""
    licence = repository.lock_licence(session, licence_id)
    if licence is None:
        raise NotFound("no such licence")
    if licence.revoked_at is not None:
        raise Conflict("the licence is already revoked")
    now = utcnow()
    licence.revoked_at, licence.revoke_reason = now, reason
    session.add(licence)
    session.flush()
    record_audit(session, actor_id=caller.id, action="licence.revoked", subject_type="licence",
                 subject_id=licence.id, detail={"reason": reason})
    return licence_public(licence, now=now)
