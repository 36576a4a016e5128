"""Opening table families under the co-op-wide privacy budget, and reading the budget.

Invariants:
- A family ``(kind, purpose, time_bucket, resolution)`` is opened at most once and never
  re-parameterised: a licence needing an open family joins it on the family's own ``epsilon_per_day``
  (whatever its DatasetSpec asked for) and can only lower its ``seal_from``.
- The sum of ``epsilon_per_day`` over open families never exceeds ``COOP_PRIVACY_BUDGET_PER_DAY`` through
  an opening: the check and the insert happen under one co-op-wide lock (a PostgreSQL advisory
  transaction lock; SQLite's ``BEGIN IMMEDIATE`` already serialises writers), so two approvals racing
  for the last of the budget cannot both pass. Families opened by the 0005 migration's backfill of older
  licences are exempt (they existed before the budget did), which is the only way spent may exceed cap.
- Opening beyond the budget raises :class:`PrivacyBudgetExhausted` (409) before anything is written;
  the caller's transaction is rolled back, so the approving vote is not recorded either.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from coop.kit.errors import Conflict, NotFound
from coop.kit.settings import Settings
from coop.tables.models import TableFamily
from coop.tables.plans import derive_plan

_BUDGET_LOCK_KEY = 0x5EA1ED  # the advisory lock that serialises family openings (PostgreSQL)
_EPSILON_SLACK = 1e-9  # float sums: 4 x 0.5 must fit a cap of 2.0


class PrivacyBudgetExhausted(Conflict):
    """Opening the family would take the co-op past its privacy budget per member-day."""

    title, type_slug = "Privacy budget exhausted", "privacy-budget-exhausted"


@dataclass(frozen=True)
class FamilyKey:
    kind: str
    purpose_code: str
    time_bucket: str
    resolution: int


@dataclass(frozen=True)
class PrivacyCost:
    """What approving a request costs: its family (if open), whether it opens one, and at what epsilon."""

    family_id: str | None
    opens_family: bool
    epsilon_per_day: float
    remaining_epsilon_per_day: float


@dataclass(frozen=True)
class Budget:
    cap_epsilon_per_day: float
    spent_epsilon_per_day: float
    families: list[TableFamily]

    @property
    def remaining_epsilon_per_day(self) -> float:
        return max(0.0, self.cap_epsilon_per_day - self.spent_epsilon_per_day)


class HasFamily(Protocol):
    @property
    def family_id(self) -> str | None: ...


def family_key(*, purpose_code: str, dataset: dict[str, Any]) -> FamilyKey:
    """The family a stored DatasetSpec needs (``kind`` defaults to presence for older specs)."""
    return FamilyKey(kind=str(dataset.get("kind") or "presence"), purpose_code=purpose_code,
                     time_bucket=str(dataset["time_bucket"]), resolution=int(dataset["resolution"]))


def find_family(session: Session, key: FamilyKey) -> TableFamily | None:
    query = select(TableFamily).where(TableFamily.kind == key.kind, TableFamily.purpose_code == key.purpose_code,
                                      TableFamily.time_bucket == key.time_bucket,
                                      TableFamily.resolution == key.resolution)
    return session.exec(query).first()


def list_families(session: Session) -> list[TableFamily]:
    """Every open family, oldest first."""
    return list(session.exec(select(TableFamily).order_by(col(TableFamily.opened_at), col(TableFamily.id))))


def read_budget(session: Session, settings: Settings) -> Budget:
    families = list_families(session)
    spent = sum(family.epsilon_per_day for family in families)
    return Budget(cap_epsilon_per_day=settings.privacy_budget_per_day, spent_epsilon_per_day=spent,
                  families=families)


def requested_epsilon(dataset: dict[str, Any], settings: Settings) -> float:
    value = dataset.get("epsilon_per_day")
    return settings.family_epsilon_per_day if value is None else float(value)


def privacy_cost(session: Session, *, purpose_code: str, dataset: dict[str, Any], settings: Settings,
                 licence_id: str | None = None) -> PrivacyCost:
    """The cost the board sees before voting (``remaining`` is the budget left now, before approval).

    For an issued licence (``licence_id``), ``opens_family`` says whether its issuance opened the family.
    """
    family = find_family(session, family_key(purpose_code=purpose_code, dataset=dataset))
    remaining = read_budget(session, settings).remaining_epsilon_per_day
    if family is not None:
        opened = licence_id is not None and family.opened_by_licence_id == licence_id
        return PrivacyCost(family_id=family.id, opens_family=opened, epsilon_per_day=family.epsilon_per_day,
                           remaining_epsilon_per_day=remaining)
    return PrivacyCost(family_id=None, opens_family=True, epsilon_per_day=requested_epsilon(dataset, settings),
                       remaining_epsilon_per_day=remaining)


def new_family(*, key: FamilyKey, epsilon_per_day: float, settings: Settings, at: datetime, seal_from: date,
               licence_id: str | None) -> TableFamily:
    """A family row with its noise plan derived now (not yet added to any session)."""
    plan = derive_plan(kind=key.kind, time_bucket=key.time_bucket, resolution=key.resolution,
                       epsilon_per_day=epsilon_per_day, delta=settings.dp_delta, k_floor=settings.k_floor,
                       coarsest_resolution=settings.coarsest_resolution)
    return TableFamily(id=str(uuid.uuid4()), kind=key.kind, purpose_code=key.purpose_code,
                       time_bucket=key.time_bucket, resolution=key.resolution, epsilon_per_day=epsilon_per_day,
                       delta=settings.dp_delta, k_floor=settings.k_floor, tau=plan.tau, sigma=plan.sigma,
                       contribution_bound=plan.contribution_bound,
                       coarsest_resolution=settings.coarsest_resolution, mechanism=plan.mechanism,
                       opened_at=at, opened_by_licence_id=licence_id, seal_from=seal_from)


def _lock_budget(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _BUDGET_LOCK_KEY})


def join_or_open_family(session: Session, *, purpose_code: str, dataset: dict[str, Any], settings: Settings,
                        at: datetime, licence_id: str) -> tuple[TableFamily, bool]:
    """The family a licence being issued reads (opened now if needed); True when it was opened.

    Raises :class:`PrivacyBudgetExhausted` when opening it would exceed the budget; nothing is written.
    """
    key = family_key(purpose_code=purpose_code, dataset=dataset)
    start = date.fromisoformat(str(dataset["start"]))
    _lock_budget(session)
    family = find_family(session, key)
    if family is not None:
        if start < family.seal_from:
            family.seal_from = start
            session.add(family)
            session.flush()
        return family, False
    epsilon = requested_epsilon(dataset, settings)
    budget = read_budget(session, settings)
    if budget.spent_epsilon_per_day + epsilon > budget.cap_epsilon_per_day + _EPSILON_SLACK:
        raise PrivacyBudgetExhausted(
            f"opening a new table family ({key.kind}, {key.purpose_code}, {key.time_bucket}, resolution "
            f"{key.resolution}) costs epsilon {epsilon:g} per member-day, but only "
            f"{budget.remaining_epsilon_per_day:g} of the co-op's {budget.cap_epsilon_per_day:g} remains; "
            "the vote was not recorded and the request stays submitted")
    family = new_family(key=key, epsilon_per_day=epsilon, settings=settings, at=at, seal_from=start,
                        licence_id=licence_id)
    try:
        with session.begin_nested():
            session.add(family)
    except IntegrityError:  # another approval opened it first (SQLite cannot get here: one writer)
        existing = find_family(session, key)
        if existing is None:
            raise
        return existing, False
    return family, True


def get_family(session: Session, family_id: str) -> TableFamily:
    family = session.get(TableFamily, family_id)
    if family is None:
        raise NotFound("no such table family")
    return family


def family_for_licence(session: Session, licence: HasFamily) -> TableFamily:
    """The family a licence reads (every licence issued since sealing began has one)."""
    if licence.family_id is None:
        raise NotFound("the licence has no table family")
    return get_family(session, licence.family_id)
