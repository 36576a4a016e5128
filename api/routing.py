"""``CommittingRoute``: the request's one transaction is committed before the response is returned.

Invariant: a handler that returns normally has its session committed before the client sees the
answer (so "200 only after commit" holds); a handler that raises has it rolled back. The session is
closed in every case. Streaming bodies must open their own session (``coop.kit.db.session_scope``).
"""

from __future__ import annotations

import asyncio
import weakref
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


class QueuedWriterRoute(CommittingRoute):
    """A committing route whose requests, on SQLite, take turns in this process.

    SQLite has one writer at a time, and a writer that finds the database locked sleeps in growing steps
    (1, 2, 5, 10 ... ms) before it retries, so concurrent write-heavy requests leave it idle between
    them. Here they wait on an in-process FIFO lock instead, after reading their body, and each starts
    the moment the previous one has committed. Other processes are still kept out by SQLite's own lock.
    On PostgreSQL this route is a plain ``CommittingRoute``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        committing = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.app.state.engine.dialect.name != "sqlite":
                return await committing(request)
            lock = _sqlite_writer_lock(request)
            await request.body()  # read (and cache) the body while another request writes
            async with lock:
                return await committing(request)

        return handler


def _sqlite_writer_lock(request: Request) -> asyncio.Lock:
    """The FIFO writer lock of the running event loop.

    An ``asyncio.Lock`` belongs to one event loop: shared by two loops (one app served by several
    loops, as by test clients in several threads), a waiter is woken from the wrong thread and sleeps for
    ever. So each loop has its own lock; writers of different loops fall back to SQLite's own lock.
    """
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] | None = getattr(
        request.app.state, "sqlite_writer_locks", None)
    if locks is None:
        locks = request.app.state.sqlite_writer_locks = weakref.WeakKeyDictionary()
    return locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def domain_router(*, tag: str, authenticated: bool = True,
                  route_class: type[CommittingRoute] = CommittingRoute) -> APIRouter:
    """An ``APIRouter`` for one domain: committing routes and the documented problem responses."""
    responses = {**COMMON_RESPONSES, **(AUTH_RESPONSES if authenticated else {})}
    return APIRouter(tags=[tag], route_class=route_class, responses=responses)
