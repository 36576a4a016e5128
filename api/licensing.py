"""Licences and board governance (see ../shared/api-contract.md and docs/governance.md).

Licence requests (modellers), board votes with a quorum, signed licences, revocation, and the
board's read of the audit trail (``GET /v1/audit``, an addition to the contract). Licence payments
(``POST /v1/licences/{id}/payments``) belong to the ledger's router.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from api.deps import BoardCaller, KeyringDep, ModellerCaller, SessionDep, SettingsDep, require_roles
from api.params import CursorQuery, LimitQuery
from api.problems import problem_doc
from api.routing import domain_router
from coop.accounts.models import Role
from coop.accounts.service import Principal
from coop.kit.pagination import DEFAULT_LIMIT, Page
from coop.licensing import audit_trail, licences, service
from coop.licensing.schemas import (
    AuditEventPublic,
    LicencePublic,
    LicenceRequestCreate,
    LicenceRequestPublic,
    RequestStatus,
    RevokeCreate,
    VoteCast,
    VoteCreate,
)

router = domain_router(tag="licences")

BoardOrModeller = Annotated[Principal, Depends(require_roles(Role.BOARD, Role.MODELLER))]
LicenceReader = Annotated[Principal, Depends(require_roles(Role.BOARD, Role.MODELLER, Role.TREASURER))]

CONFLICT_VOTE = problem_doc("Already voted, the request is no longer submitted, or the approval would open "
                            "a table family beyond the privacy budget "
                            "(urn:coop:problem:privacy-budget-exhausted: nothing is recorded)")


@router.post("/v1/licence-requests", status_code=201)
def submit_licence_request(body: LicenceRequestCreate, caller: ModellerCaller, session: SessionDep,
                           settings: SettingsDep) -> LicenceRequestPublic:
    """Ask the board for a licence. The dataset is checked against the co-op's settings."""
    return service.submit_request(session, caller=caller, body=body, settings=settings)


@router.get("/v1/licence-requests")
def list_licence_requests(caller: BoardOrModeller, session: SessionDep, settings: SettingsDep,
                          status: RequestStatus | None = None, limit: LimitQuery = DEFAULT_LIMIT,
                          cursor: CursorQuery = None) -> Page[LicenceRequestPublic]:
    """The board sees every request; a modeller sees their own. Oldest first."""
    items, next_cursor = service.list_requests(session, caller=caller, status=status, limit=limit,
                                               cursor=cursor, settings=settings)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/v1/licence-requests/{request_id}")
def read_licence_request(request_id: str, caller: BoardOrModeller, session: SessionDep,
                         settings: SettingsDep) -> LicenceRequestPublic:
    """The request, its votes and its privacy cost (``privacy``)."""
    return service.get_request(session, caller=caller, request_id=request_id, settings=settings)


@router.post("/v1/licence-requests/{request_id}/votes", status_code=201,
             responses={409: CONFLICT_VOTE})
def vote_on_licence_request(request_id: str, body: VoteCreate, caller: BoardCaller, session: SessionDep,
                            settings: SettingsDep, keyring: KeyringDep) -> VoteCast:
    """One vote per board member; the requester may not vote (403). At the quorum the request is
    decided, and an approved request's licence is issued at once."""
    return service.cast_vote(session, caller=caller, request_id=request_id, body=body, settings=settings,
                             keyring=keyring)


@router.post("/v1/licence-requests/{request_id}/withdraw",
             responses={409: problem_doc("The request is no longer submitted")})
def withdraw_licence_request(request_id: str, caller: ModellerCaller, session: SessionDep,
                             settings: SettingsDep) -> LicenceRequestPublic:
    return service.withdraw_request(session, caller=caller, request_id=request_id, settings=settings)


@router.get("/v1/licences")
def list_licences(caller: LicenceReader, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                  cursor: CursorQuery = None) -> Page[LicencePublic]:
    """The board sees every licence; a modeller sees the licences issued to them. Oldest first."""
    items, next_cursor = licences.list_licences(session, caller=caller, limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/v1/licences/{licence_id}")
def read_licence(licence_id: str, caller: LicenceReader, session: SessionDep) -> LicencePublic:
    """The licence with its signed document (verify ``jws`` against the JWKS at ``GET /v1/coop``)."""
    return licences.get_licence(session, caller=caller, licence_id=licence_id)


@router.post("/v1/licences/{licence_id}/revoke", responses={409: problem_doc("Already revoked")})
def revoke_licence(licence_id: str, body: RevokeCreate, caller: BoardCaller, session: SessionDep) -> LicencePublic:
    """No further releases or downloads under the licence."""
    return licences.revoke_licence(session, caller=caller, licence_id=licence_id, reason=body.reason)


@router.get("/v1/audit")
def read_audit_trail(caller: BoardCaller, session: SessionDep,
                     subject_id: Annotated[str | None, Query(max_length=64)] = None,
                     limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None) -> Page[AuditEventPublic]:
    """Every recorded decision (board only), oldest first; ``subject_id`` narrows it to one subject."""
    items, next_cursor = audit_trail.list_audit_events(session, subject_id=subject_id, limit=limit,
                                                       cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)
