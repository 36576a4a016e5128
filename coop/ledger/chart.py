"""The chart of accounts.

Invariants: the four co-op accounts below always exist (seeded by migration ``0003_ledger``); a
member's account is ``member:<account_id>`` (a liability: dividends owed to that member) and is
created the first time something is posted to it. Account codes never change once used.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

CASH = "cash"
LICENCE_RECEIVABLES = "licence-receivables"
LICENCE_INCOME = "licence-income"
RESERVE = "reserve"
MEMBER_PREFIX = "member:"

ASSET, LIABILITY, EQUITY, INCOME, EXPENSE = "asset", "liability", "equity", "income", "expense"
ACCOUNT_TYPES = (ASSET, LIABILITY, EQUITY, INCOME, EXPENSE)

CHART: dict[str, tuple[str, str]] = {
    CASH: ("Cash at bank", ASSET),
    LICENCE_RECEIVABLES: ("Licence fees invoiced and not yet paid", ASSET),
    LICENCE_INCOME: ("Licence fee income not yet distributed", INCOME),
    RESERVE: ("Co-op reserve", EQUITY),
}
"""code -> (name, type) of the co-op's own accounts."""

ledger_account_table = sa.table(
    "ledger_account", sa.column("code", sa.String), sa.column("name", sa.String), sa.column("type", sa.String),
)


def chart_rows() -> list[dict[str, str]]:
    return [{"code": code, "name": name, "type": kind} for code, (name, kind) in CHART.items()]


def insert_chart(connection: Connection) -> None:
    """Insert the co-op's own accounts (into an empty ``ledger_account`` table)."""
    connection.execute(ledger_account_table.insert(), chart_rows())


def member_account_code(member_id: str) -> str:
    return f"{MEMBER_PREFIX}{member_id}"


def member_id_of(code: str) -> str | None:
    """The member id in a ``member:<id>`` code, else None."""
    if code.startswith(MEMBER_PREFIX) and len(code) > len(MEMBER_PREFIX):
        return code[len(MEMBER_PREFIX):]
    return None
