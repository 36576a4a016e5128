"""The tables domain's service: what other domains and the API call (nothing else of this package).

- Licensing: :func:`privacy_cost` (shown on a request), :func:`open_family` (at a licence's issuance;
  raises ``PrivacyBudgetExhausted``), :func:`accepted_kinds` (DatasetSpec validation).
- Releases, usage and dividends: :func:`family_for_licence`, :func:`sealed_through`, :func:`is_sealed`,
  :func:`sealed_cells`, :func:`sealed_pairs`, :func:`member_units`.
- The API: :func:`list_tables`, :func:`privacy_budget`, :func:`member_privacy_loss`.
- Workers and the CLI: :func:`seal_due`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import cast

from sqlmodel import Session, col, select

from coop.kit.errors import InvalidInput
from coop.kit.pagination import keyset_page
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.tables.families import (
    PrivacyBudgetExhausted,
    PrivacyCost,
    family_for_licence,
    get_family,
    join_or_open_family,
    privacy_cost,
    read_budget,
)
from coop.tables.kinds import accepted_kinds
from coop.tables.models import TableFamily
from coop.tables.reading import (
    is_sealed,
    member_units,
    privacy_loss,
    sealed_cells,
    sealed_pairs,
    sealed_through,
)
from coop.tables.schemas import (
    BudgetFamily,
    Kind,
    PrivacyBudgetPublic,
    PrivacyLossDay,
    PrivacyLossPublic,
    TablePublic,
    TimeBucket,
)
from coop.tables.sealing import FamilySealed, seal_due

open_family = join_or_open_family
"""``open_family(session, *, purpose_code, dataset, settings, at, licence_id) -> (family, opened)``."""

DEFAULT_LOSS_DAYS = 30
MAX_LOSS_DAYS = 366

__all__ = [
    "FamilySealed", "PrivacyBudgetExhausted", "PrivacyCost", "accepted_kinds", "family_for_licence", "get_family",
    "is_sealed", "list_tables", "member_privacy_loss", "member_units", "open_family", "privacy_budget",
    "privacy_cost", "seal_due", "sealed_cells", "sealed_pairs", "sealed_through",
]


def table_public(session: Session, family: TableFamily) -> TablePublic:
    return TablePublic(family_id=family.id, kind=cast(Kind, family.kind), purpose=family.purpose_code,
                       time_bucket=cast(TimeBucket, family.time_bucket), resolution=family.resolution,
                       epsilon_per_day=family.epsilon_per_day, delta=family.delta, tau=family.tau,
                       contribution_bound=family.contribution_bound, opened_at=family.opened_at,
                       sealed_through=sealed_through(session, family))


def list_tables(session: Session, *, limit: int, cursor: str | None) -> tuple[list[TablePublic], str | None]:
    """Open families, oldest first, each with how far it is sealed."""
    rows, next_cursor = keyset_page(session, select(TableFamily),
                                    order=[col(TableFamily.opened_at), col(TableFamily.id)], limit=limit,
                                    cursor=cursor)
    return [table_public(session, family) for family in rows], next_cursor


def privacy_budget(session: Session, settings: Settings) -> PrivacyBudgetPublic:
    budget = read_budget(session, settings)
    return PrivacyBudgetPublic(
        cap_epsilon_per_day=budget.cap_epsilon_per_day, spent_epsilon_per_day=budget.spent_epsilon_per_day,
        remaining_epsilon_per_day=budget.remaining_epsilon_per_day,
        families=[BudgetFamily(family_id=f.id, kind=cast(Kind, f.kind), purpose=f.purpose_code,
                               time_bucket=cast(TimeBucket, f.time_bucket), resolution=f.resolution,
                               epsilon_per_day=f.epsilon_per_day) for f in budget.families])


def _invalid(field: str, why: str) -> InvalidInput:
    return InvalidInput(f"{field}: {why}", errors=[{"loc": ["query", field], "msg": why, "type": "value_error"}])


def member_privacy_loss(session: Session, *, member_id: str, start: date | None, end: date | None,
                        settings: Settings) -> PrivacyLossPublic:
    """Per day of ``[start, end)`` (default: the 30 days up to and including today, UTC)."""
    try:
        if end is None:
            end = (start + timedelta(days=DEFAULT_LOSS_DAYS)) if start else utcnow().date() + timedelta(days=1)
        if start is None:
            start = end - timedelta(days=DEFAULT_LOSS_DAYS)
    except OverflowError as exc:
        raise _invalid("start", "date out of range") from exc
    if start >= end:
        raise _invalid("end", "end must be after start (end is exclusive)")
    if (end - start).days > MAX_LOSS_DAYS:
        raise _invalid("end", f"at most {MAX_LOSS_DAYS} days at a time")
    loss = privacy_loss(session, member_id, start_day=start, end_day=end)
    return PrivacyLossPublic(cap_epsilon_per_day=settings.privacy_budget_per_day,
                             days=[PrivacyLossDay(date=day, epsilon=epsilon) for day, epsilon in loss.items()])
