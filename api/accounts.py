"""Accounts and tokens: sign-up (with an invitation code), ``/v1/me``, token management, and the
admin's account creation, invitation codes and member verification."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response

from api.deps import AdminCaller, AnyAccount, KeyringDep, SessionDep, SettingsDep
from api.params import CursorQuery, LimitQuery
from api.problems import problem_doc
from api.routing import domain_router
from coop.accounts import invitations, service
from coop.accounts.schemas import (
    AccountCreate,
    AccountCreated,
    InvitationsCreate,
    InvitationsIssued,
    MemberCreate,
    MemberCreated,
    MemberVerified,
    MePublic,
    TokenCreate,
    TokenCreated,
    TokenPublic,
)
from coop.kit.pagination import DEFAULT_LIMIT, Page

router = domain_router(tag="accounts")


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


MemberId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]


@router.post("/v1/members", status_code=201, responses={
    409: problem_doc("Terms version is not current"),
    422: problem_doc("Invalid input, or the invitation code is unknown, used or expired"),
    429: problem_doc("Too many sign-ups, or too many wrong invitation codes, from this address")})
def sign_up(body: MemberCreate, request: Request, session: SessionDep, settings: SettingsDep,
            keyring: KeyringDep) -> MemberCreated:
    address = _client_address(request)
    request.app.state.signup_limiter.hit(address, what="sign-ups from this address")
    wrong_codes = request.app.state.invitation_failure_limiter
    if body.invitation_code is not None:
        wrong_codes.check(address, what="wrong invitation codes from this address")
    try:
        account, issued = service.sign_up_member(
            session, display_name=body.display_name, accept_terms_version=body.accept_terms_version,
            current_terms_version=settings.terms_version, keyring=keyring, invitation_code=body.invitation_code)
    except invitations.InvalidInvitation:
        wrong_codes.record(address)
        raise
    return MemberCreated(member_id=account.id, token=issued.token, token_id=issued.token_id,
                         verified=service.is_verified(account, settings))


@router.get("/v1/me")
def read_me(caller: AnyAccount, settings: SettingsDep) -> MePublic:
    account = caller.account
    return MePublic(account_id=account.id, roles=list(account.roles), display_name=account.display_name,
                    organisation=account.organisation, created_at=account.created_at,
                    collection_paused=account.collection_paused,
                    verified=service.is_verified(account, settings))


@router.post("/v1/me/tokens", status_code=201)
def create_token(body: TokenCreate, caller: AnyAccount, session: SessionDep) -> TokenCreated:
    issued = service.issue_token(session, account_id=caller.id, label=body.label)
    return TokenCreated(token_id=issued.token_id, token=issued.token, label=body.label,
                        created_at=issued.token_row.created_at)


@router.get("/v1/me/tokens")
def list_tokens(caller: AnyAccount, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                cursor: CursorQuery = None) -> Page[TokenPublic]:
    rows, next_cursor = service.list_tokens(session, account_id=caller.id, limit=limit, cursor=cursor)
    items = [TokenPublic(token_id=row.id, label=row.label, created_at=row.created_at) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


@router.delete("/v1/me/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, caller: AnyAccount, session: SessionDep) -> Response:
    service.revoke_token(session, account_id=caller.id, token_id=token_id)
    return Response(status_code=204)


@router.post("/v1/accounts", status_code=201)
def create_account(body: AccountCreate, caller: AdminCaller, session: SessionDep,
                   keyring: KeyringDep) -> AccountCreated:
    account, issued = service.create_account(session, roles=list(body.roles), display_name=body.display_name,
                                             organisation=body.organisation, keyring=keyring)
    return AccountCreated(account_id=account.id, token=issued.token, token_id=issued.token_id)


@router.post("/v1/invitations", status_code=201)
def issue_invitations(body: InvitationsCreate, caller: AdminCaller, session: SessionDep) -> InvitationsIssued:
    """Single-use invitation codes; each verifies the member who signs up with it."""
    issued = invitations.issue_invitations(session, created_by=caller.id, count=body.count, note=body.note,
                                           valid_days=body.valid_days)
    return InvitationsIssued(codes=issued.codes, expires_at=issued.expires_at)


@router.post("/v1/members/{member_id}/verify")
def verify_member(member_id: MemberId, caller: AdminCaller, session: SessionDep) -> MemberVerified:
    """Verify a member who joined without a code (idempotent: a verified member keeps ``verified_at``)."""
    verified_at = service.verify_member(session, member_id=member_id, verified_by=caller.id)
    return MemberVerified(member_id=member_id, verified_at=verified_at)
