"""ledger: seed the chart of accounts; refuse UPDATE and DELETE of entries and postings

Revision ID: 0003_ledger
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from coop.ledger.chart import CHART, chart_rows, ledger_account_table
from coop.ledger.guard import install_append_only_guards, remove_append_only_guards

revision: str = "0003_ledger"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.bulk_insert(ledger_account_table, chart_rows())
    install_append_only_guards(op.get_bind())


def downgrade() -> None:
    remove_append_only_guards(op.get_bind())
    codes = ", ".join(f"'{code}'" for code in CHART)
    op.execute(f"DELETE FROM ledger_account WHERE code IN ({codes})")  # noqa: S608 - constant codes
