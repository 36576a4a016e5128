"""seed the six purposes of the contract

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.seed import PURPOSES, purpose_rows, purpose_table

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.bulk_insert(purpose_table, purpose_rows())


def downgrade() -> None:
    codes = ", ".join(f"'{code}'" for code, *_ in PURPOSES)
    op.execute(f"DELETE FROM purpose WHERE code IN ({codes})")  # noqa: S608 - constant codes
