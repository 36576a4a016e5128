"""Test harness.

One migrated database per run: SQLite in a temporary directory by default, or the PostgreSQL
database named by ``COOP_TEST_DATABASE_URL`` (its schema is dropped and rebuilt by the migrations).
Each test starts from empty tables (purposes re-seeded), so tests are isolated even when the app
commits, runs background work or uses threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from coop.kit.db import engine_for, is_sqlite
from coop.kit.migrate import upgrade_to_head
from coop.kit.settings import Settings
from coop.ledger.chart import insert_chart
from coop.ledger.guard import append_only_guards_lifted
from coop.models import metadata
from migrations import seed as _seed

KEEP_TABLES = {"alembic_version"}


def _reset_postgres_schema(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("COOP_TEST_DATABASE_URL")
    if url:
        _reset_postgres_schema(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Engine:
    return engine_for(database_url)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def _empty_tables(engine: Engine) -> None:
    tables = [t for t in reversed(metadata.sorted_tables) if t.name not in KEEP_TABLES]
    with engine.begin() as connection:
        if is_sqlite(str(engine.url)):
            # SQLite's append-only triggers refuse DELETE on ledger rows; lift them for the cleanup only
            # (PostgreSQL's TRUNCATE fires no row trigger).
            with append_only_guards_lifted(connection):
                for table in tables:
                    connection.execute(table.delete())
        else:
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        _seed.insert_purposes(connection)
        insert_chart(connection)


@pytest.fixture(autouse=True)
def _clean_database(engine: Engine) -> Iterator[None]:
    yield
    _empty_tables(engine)


@pytest.fixture(scope="session", autouse=True)
def _start_clean(engine: Engine) -> None:
    _empty_tables(engine)


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11")


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the reliability figures (fuzzing, authorisation matrix, concurrency, crashes) when collected."""
    from tests.support.figures import summary_lines

    lines = summary_lines()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
