"""Sealed tables and the privacy budget (see ../shared/api-contract.md "Sealed tables").

``GET /v1/tables`` (modeller, board, treasurer), ``GET /v1/privacy-budget`` (public) and
``GET /v1/me/privacy-loss`` (member). In ``coop serve`` the app also runs the sealing loop
(``coop.tables.worker``), started and stopped with the app's lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from starlette.concurrency import run_in_threadpool

from api.deps import MemberCaller, SessionDep, SettingsDep, require_roles
from api.params import CursorQuery, LimitQuery
from api.routing import domain_router
from coop.accounts.models import Role
from coop.accounts.service import Principal
from coop.kit.errors import InvalidInput
from coop.kit.pagination import DEFAULT_LIMIT, Page
from coop.tables import service
from coop.tables.schemas import PrivacyBudgetPublic, PrivacyLossPublic, TablePublic
from coop.tables.worker import SealingLoop

router = domain_router(tag="tables")
public_router = domain_router(tag="tables", authenticated=False)
log = logging.getLogger("coop.tables")

TableReader = Annotated[Principal, Depends(require_roles(Role.MODELLER, Role.BOARD, Role.TREASURER))]
DateQuery = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD (UTC)")]


@asynccontextmanager
async def sealing_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the sealing loop while the app serves, when the app was made to (``coop serve``)."""
    loop: SealingLoop | None = None
    if getattr(app.state, "background_sealing", False):
        loop = SealingLoop(app.state.engine, app.state.settings)
        loop.start()
        app.state.sealing_loop = loop
    try:
        yield
    finally:
        if loop is not None:
            await run_in_threadpool(loop.stop)
            app.state.sealing_loop = None


router.lifespan_context = sealing_lifespan


def _day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: not a calendar date", errors=[
            {"loc": ["query", field], "msg": "not a calendar date", "type": "value_error"}]) from exc


@router.get("/v1/tables")
def list_tables(caller: TableReader, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                cursor: CursorQuery = None) -> Page[TablePublic]:
    """Open table families, oldest first, each with its DP parameters and how far it is sealed."""
    del caller
    items, next_cursor = service.list_tables(session, limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)


@public_router.get("/v1/privacy-budget")
def read_privacy_budget(session: SessionDep, settings: SettingsDep) -> PrivacyBudgetPublic:
    """The co-op-wide budget per member-day: the cap, what open families spend, what remains."""
    return service.privacy_budget(session, settings)


@router.get("/v1/me/privacy-loss")
def read_privacy_loss(caller: MemberCaller, session: SessionDep, settings: SettingsDep, start: DateQuery = None,
                      end: DateQuery = None) -> PrivacyLossPublic:
    """Per UTC day of ``[start, end)`` (default: the last 30 days, today included), the epsilon spent on
    the caller: the sum over the families whose tables for that day took their data."""
    return service.member_privacy_loss(session, member_id=caller.id, start=_day(start, "start"),
                                       end=_day(end, "end"), settings=settings)
