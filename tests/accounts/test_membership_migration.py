"""Migration 0004_membership on a database that already has accounts: they were admitted under the old
rules and are marked verified as of their creation (docs/governance.md); it also downgrades cleanly.

This runs on its own SQLite file whatever ``COOP_TEST_DATABASE_URL`` says (the shared test database is
already at head); the migration's only data statement is plain SQL, which the PostgreSQL run of the
suite executes when it builds its schema.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from coop.kit.migrate import alembic_config


def test_existing_accounts_are_verified_as_of_their_creation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0003_ledger")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for n, created in enumerate(("2026-01-05 10:00:00", "2026-03-01 08:30:00")):
                connection.execute(sa.text(
                    "INSERT INTO account (id, display_name, roles, created_at, collection_paused) "
                    "VALUES (:id, :name, '[\"member\"]', :created, 0)"), {"id": f"old-{n}", "name": f"Old {n}",
                                                                           "created": created})
        command.upgrade(config, "0004_membership")
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT created_at, verified_at FROM account ORDER BY id")).all()
            assert connection.execute(sa.text("SELECT COUNT(*) FROM invitation")).scalar_one() == 0
        assert len(rows) == 2
        assert [verified for _created, verified in rows] == [created for created, _verified in rows]
        assert all(verified is not None for _created, verified in rows)

        command.downgrade(config, "0003_ledger")
        with engine.connect() as connection:
            columns = {column["name"] for column in sa.inspect(connection).get_columns("account")}
            assert "verified_at" not in columns and not sa.inspect(connection).has_table("invitation")
    finally:
        engine.dispose()
