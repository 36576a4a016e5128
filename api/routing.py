"""``CommittingRoute``: the request's one transaction is committed before the response is returned.

Invariant: a handler that returns normally has its session committed before the client sees the
answer (so "200 only after commit" holds); a handler that raises has it rolled back. The session is
closed in every case. Streaming bodies must open their own session (``coop.db.session_scope``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.problems import AUTH_RESPONSES, COMMON_RESPONSES


def _request_session(request: Request) -> Session | None:
    session = getattr(request.state, "db_session", None)
    return session if isinstance(session, Session) else None


def _commit_and_close(session: Session) -> None:
    """Commit, then close (one trip to the thread pool instead of two); close even if commit fails."""
    try:
        session.commit()
    finally:
        session.close()


class CommittingRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
                session = _request_session(request)
                if session is not None:
                    request.state.db_session = None
                    await run_in_threadpool(_commit_and_close, session)
                return response
            except BaseException:
                session = _request_session(request)
                if session is not None:
                    await run_in_threadpool(session.rollback)
                raise
            finally:
                session = _request_session(request)
                if session is not None:
                    request.state.db_session = None
                    await run_in_threadpool(session.close)

        return handler


def domain_router(*, tag: str, authenticated: bool = True) -> APIRouter:
    """An ``APIRouter`` for one domain: committing routes and the documented problem responses."""
    responses = {**COMMON_RESPONSES, **(AUTH_RESPONSES if authenticated else {})}
    return APIRouter(tags=[tag], route_class=CommittingRoute, responses=responses)
