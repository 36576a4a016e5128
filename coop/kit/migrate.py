"""Programmatic Alembic: ``upgrade_to_head`` is what ``coop db upgrade`` and ``coop serve`` run."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (idempotent)."""
    command.upgrade(alembic_config(url), "heads")
