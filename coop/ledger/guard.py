"""Database-level refusal of UPDATE and DELETE on ``ledger_entry`` and ``ledger_posting``.

Invariant: once migration ``0003_ledger`` has run, the database itself refuses to change or remove
a ledger row, whatever code (or person with a SQL prompt) tries: a BEFORE UPDATE OR DELETE row
trigger raises. On PostgreSQL ``TRUNCATE`` fires no row trigger, so the test harness can still empty
the tables (production should run the app as a role without TRUNCATE on these tables). On SQLite the
harness empties tables with DELETE, so it lifts the guards for that one statement and puts them back
(:func:`append_only_guards_lifted`); tamper tests use the same context manager.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

GUARDED_TABLES = ("ledger_entry", "ledger_posting")
MESSAGE = "ledger rows are append-only: corrections are new entries"

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
        MESSAGE = '{MESSAGE} (' || TG_OP || ' on ' || TG_TABLE_NAME || ')';
END
$$
"""


def _trigger_names(table: str, dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"{table}_append_only"]
    return [f"{table}_no_update", f"{table}_no_delete"]


def install_append_only_guards(connection: Connection) -> None:
    """Create the triggers (idempotent: existing ones are replaced)."""
    remove_append_only_guards(connection)
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql(_PG_FUNCTION)
        for table in GUARDED_TABLES:
            connection.exec_driver_sql(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
        return
    for table in GUARDED_TABLES:
        for operation in ("update", "delete"):
            connection.exec_driver_sql(
                f"CREATE TRIGGER {table}_no_{operation} BEFORE {operation.upper()} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END")


def remove_append_only_guards(connection: Connection) -> None:
    """Drop the triggers (the migration's downgrade, the SQLite test harness, tamper tests)."""
    dialect = connection.dialect.name
    for table in GUARDED_TABLES:
        for name in _trigger_names(table, dialect):
            if dialect == "postgresql":
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            else:
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    if dialect == "postgresql":
        connection.exec_driver_sql("DROP FUNCTION IF EXISTS ledger_refuse_change()")


@contextmanager
def append_only_guards_lifted(connection: Connection) -> Iterator[None]:
    """Run the block without the guards, inside ``connection``'s transaction; they come back after."""
    remove_append_only_guards(connection)
    try:
        yield
    finally:
        install_append_only_guards(connection)
