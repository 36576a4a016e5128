"""Database engine and sessions.

Invariants: one engine per URL (and statement timeout) per process; SQLite runs in WAL mode with foreign
keys on and a busy timeout; PostgreSQL sessions of the app carry a statement timeout; one session per
request, committed once by the request dependency (services only flush).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine

from coop.kit.settings import get_settings
from coop.kit.timeutil import as_utc


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite hands back naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


READ_SNAPSHOT = "coop_read_snapshot"
"""Execution option: on SQLite, begin a deferred (read-only snapshot) transaction instead of IMMEDIATE."""


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling is disabled below; BEGIN IMMEDIATE takes the write lock up
    # front so two writers queue on the busy timeout instead of failing with "database is locked".
    # Long read-only work (release builds, exports) asks for a deferred BEGIN: in WAL mode it reads a
    # consistent snapshot without blocking writers.
    if conn.get_execution_options().get(READ_SNAPSHOT):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, statement_timeout_ms: int = 0) -> Engine:
    """A new engine for ``url`` with this project's connection settings.

    ``statement_timeout_ms`` (PostgreSQL; 0 = none) makes the server cancel any one statement that runs
    longer, so a runaway query cannot hold a connection and its locks for ever; the API maps the
    cancellation to a 503 with ``Retry-After``. SQLite has no statement timeout; its writers wait at most
    ``busy_timeout`` (30 s) for the write lock, then fail the same way.
    """
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "isolation_level": None})
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args = {"options": f"-c statement_timeout={statement_timeout_ms}"} if statement_timeout_ms else {}
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args)


@lru_cache(maxsize=8)
def engine_for(url: str, *, statement_timeout_ms: int = 0) -> Engine:
    return make_engine(url, statement_timeout_ms=statement_timeout_ms)


def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    return engine_for(settings.resolved_database_url, statement_timeout_ms=settings.db_statement_timeout_ms)


@contextmanager
def read_snapshot(engine: Engine | None = None) -> Iterator[Session]:
    """A read-only session over one consistent snapshot that never blocks writers.

    SQLite: a deferred transaction in WAL mode. PostgreSQL: REPEATABLE READ, READ ONLY.
    """
    engine = engine or get_engine()
    if is_sqlite(str(engine.url)):
        bind = engine.execution_options(**{READ_SNAPSHOT: True})
    else:
        bind = engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session committed on success and rolled back on error (CLI, jobs, tests)."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
