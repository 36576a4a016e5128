"""The schema exists only through migrations, and the migrations agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from coop.models import metadata


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_migrations_seed_the_purposes(engine: Engine) -> None:
    with engine.connect() as connection:
        codes = {row[0] for row in connection.exec_driver_sql("SELECT code FROM purpose")}
    assert len(codes) == 6
