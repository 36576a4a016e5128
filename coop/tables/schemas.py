"""Response shapes of the tables domain: families, the privacy budget, a member's privacy loss."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

Kind = Literal["presence", "stays", "od"]
TimeBucket = Literal["hour", "day", "week"]
PrivacyUnit = Literal["member-day"]
PRIVACY_UNIT: PrivacyUnit = "member-day"


class TablePublic(BaseModel):
    """An open table family and how far it is sealed."""

    family_id: str
    kind: Kind
    purpose: str
    time_bucket: TimeBucket
    resolution: int
    epsilon_per_day: float
    delta: float
    tau: int = Field(description="Published counts are at least this (k floor plus the DP margin)")
    contribution_bound: int = Field(description="Cells (od pairs) one member counts in per bucket at most")
    opened_at: datetime
    sealed_through: datetime | None = Field(
        description="Exclusive end of the last sealed bucket (every bucket before it is sealed); null "
                    "while nothing is sealed yet")


class BudgetFamily(BaseModel):
    family_id: str
    kind: Kind
    purpose: str
    time_bucket: TimeBucket
    resolution: int
    epsilon_per_day: float


class PrivacyBudgetPublic(BaseModel):
    privacy_unit: PrivacyUnit = PRIVACY_UNIT
    cap_epsilon_per_day: float
    spent_epsilon_per_day: float
    remaining_epsilon_per_day: float
    families: list[BudgetFamily]


class PrivacyLossDay(BaseModel):
    date: date
    epsilon: float


class PrivacyLossPublic(BaseModel):
    privacy_unit: PrivacyUnit = PRIVACY_UNIT
    cap_epsilon_per_day: float
    days: list[PrivacyLossDay]
