"""Endpoints of the ledger domain: the journal, licence payments, dividends, payouts, statements.

Treasurers write (with ``Idempotency-Key``); treasurers and the board read; a member reads only
their own statement. See ../shared/api-contract.md, "Ledger and dividends".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query
from fastapi.responses import JSONResponse

from api.deps import KeyringDep, MemberCaller, SessionDep, SettingsDep, TreasurerCaller, require_roles
from api.idempotent import IdempotencyKey, idempotent_response
from api.params import CursorQuery, LimitQuery
from api.problems import problem_doc
from api.routing import domain_router
from coop.accounts.roles import Role
from coop.accounts.service import Principal
from coop.kit.pagination import DEFAULT_LIMIT, Page
from coop.ledger import dividends, payouts, service
from coop.ledger.journal import MAX_SEQ
from coop.ledger.schemas import (
    AccountPublic,
    AllocationPublic,
    DividendCreate,
    DividendPublic,
    EntryPublic,
    HeadPublic,
    PaymentCreate,
    PayoutCreate,
    PayoutPublic,
    StatementPublic,
    VerifyPublic,
)

router = domain_router(tag="ledger")

LedgerReader = Annotated[Principal, Depends(require_roles(Role.TREASURER, Role.BOARD))]
ResourceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]
AfterSeqQuery = Annotated[int | None, Query(ge=0, le=MAX_SEQ, description="Only entries with a larger seq")]


@router.get("/v1/ledger/accounts")
def list_accounts(caller: LedgerReader, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                  cursor: CursorQuery = None) -> Page[AccountPublic]:
    items, next_cursor = service.list_accounts(session, limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/v1/ledger/entries")
def list_entries(caller: LedgerReader, session: SessionDep, after_seq: AfterSeqQuery = None,
                 limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None) -> Page[EntryPublic]:
    items, next_cursor = service.list_entries(session, after_seq=after_seq, limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/v1/ledger/verify")
def verify_ledger(caller: LedgerReader, session: SessionDep) -> VerifyPublic:
    return service.verify_ledger(session)


@router.get("/v1/ledger/head")
def ledger_head(caller: LedgerReader, session: SessionDep, keyring: KeyringDep) -> HeadPublic:
    return service.signed_head(session, keyring=keyring)


@router.post("/v1/licences/{licence_id}/payments", status_code=201, response_model=EntryPublic,
             responses={409: problem_doc("More than the licence's outstanding fee, or key reused")})
def record_licence_payment(licence_id: ResourceId, body: PaymentCreate, caller: TreasurerCaller,
                           session: SessionDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return idempotent_response(
        session, caller_id=caller.id, scope=f"licence-payment:{licence_id}", key=idempotency_key, body=body, status_code=201,
        produce=lambda: service.receive_licence_payment(
            session, licence_id=licence_id, amount_pence=body.amount_pence, reference=body.reference,
            recorded_by=caller.id))


@router.post("/v1/dividends", status_code=201, response_model=DividendPublic,
             responses={409: problem_doc("The period overlaps a declared dividend, or key reused")})
def declare_dividend(body: DividendCreate, caller: TreasurerCaller, session: SessionDep,
                     settings: SettingsDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    reserve_bps = settings.reserve_bps if body.reserve_bps is None else body.reserve_bps
    return idempotent_response(
        session, caller_id=caller.id, scope="dividend", key=idempotency_key, body=body, status_code=201,
        produce=lambda: dividends.declare_dividend(
            session, period_start=body.period_start, period_end=body.period_end, reserve_bps=reserve_bps,
            declared_by=caller.id))


@router.get("/v1/dividends/{dividend_id}")
def read_dividend(dividend_id: ResourceId, caller: LedgerReader, session: SessionDep) -> DividendPublic:
    return dividends.get_dividend(session, dividend_id)


@router.get("/v1/dividends/{dividend_id}/allocations")
def list_allocations(dividend_id: ResourceId, caller: LedgerReader, session: SessionDep,
                     limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None) -> Page[AllocationPublic]:
    items, next_cursor = dividends.list_allocations(session, dividend_id=dividend_id, limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/v1/members/{member_id}/payouts", status_code=201, response_model=PayoutPublic,
             responses={409: problem_doc("More than the member's balance, or key reused")})
def record_payout(member_id: ResourceId, body: PayoutCreate, caller: TreasurerCaller, session: SessionDep,
                  idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return idempotent_response(
        session, caller_id=caller.id, scope=f"payout:{member_id}", key=idempotency_key, body=body, status_code=201,
        produce=lambda: payouts.record_payout(
            session, member_id=member_id, amount_pence=body.amount_pence, reference=body.reference,
            recorded_by=caller.id))


@router.get("/v1/me/statement")
def read_statement(caller: MemberCaller, session: SessionDep) -> StatementPublic:
    return payouts.member_statement(session, member_id=caller.id)
