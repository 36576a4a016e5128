"""Request and response shapes for licence requests, votes, licences and the audit trail.

Invariants: a stored ``DatasetSpec`` (``licence_request.dataset``, ``licence.dataset``) is exactly
``{"kind", "resolution", "time_bucket", "start", "end", "region", "k", "epsilon_per_day"}`` with ``k``
filled in (specs stored before sealed tables lack ``kind`` and ``epsilon_per_day``: presence, and the
family's epsilon); a licence's ``epsilon_per_day`` is its family's, a request's what was asked (null: the
default); which kinds are accepted is the tables domain's (``coop.tables.kinds``); dates are
``YYYY-MM-DD`` (UTC), ``end`` is exclusive and both ends are bucket-aligned (weeks start on Monday);
counts and money are strict integers (``9.0``, ``"9"`` and ``true`` are refused), coordinates finite.
The k floor of the co-op's settings is checked by the service, which knows the settings.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from coop.kit.settings import COARSEST_RESOLUTION, FINEST_RESOLUTION

TimeBucket = Literal["hour", "day", "week"]
Kind = Literal["presence", "stays", "od"]
RequestStatus = Literal["submitted", "approved", "rejected", "withdrawn"]
Decision = Literal["approve", "reject", "abstain"]
LicenceStatus = Literal["active", "revoked", "expired"]

MAX_FEE_PENCE = 10**12
MAX_DURATION_DAYS = 730
ABSOLUTE_K_FLOOR = 2
MAX_EPSILON_PER_DAY = 1e9
"""No setting may bring k below this (``Settings.k_floor`` is clamped to it as well)."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> Any:
    """Only ``YYYY-MM-DD`` strings (or ``date`` objects from Python callers) are dates here."""
    if isinstance(value, datetime):
        raise ValueError("expected a date YYYY-MM-DD, not a datetime")
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("expected a date YYYY-MM-DD")
    return value


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Organisation = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Statement = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
Longitude = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-180, le=180)]
Latitude = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-90, le=90)]


class Region(BaseModel):
    """A WGS84 bounding box ``[min_lng, min_lat, max_lng, max_lat]``."""

    model_config = ConfigDict(extra="forbid")

    bbox: tuple[Longitude, Latitude, Longitude, Latitude]

    @field_validator("bbox")
    @classmethod
    def _min_below_max(cls, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        min_lng, min_lat, max_lng, max_lat = bbox
        if not (min_lng < max_lng and min_lat < max_lat):
            raise ValueError("bbox must be [min_lng, min_lat, max_lng, max_lat] with min < max")
        return bbox


class _DatasetShape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind = Field(default="presence", description="presence, stays or od (see GET /v1/tables)")
    resolution: int = Field(strict=True, ge=COARSEST_RESOLUTION, le=FINEST_RESOLUTION,
                            description="H3 resolution, coarsest (7) to finest (10)")
    time_bucket: TimeBucket
    start: date = Field(description="First day (UTC), inclusive")
    end: date = Field(description="Last day (UTC), exclusive")
    region: Region | None = None
    epsilon_per_day: float | None = Field(
        default=None, strict=True, gt=0, le=MAX_EPSILON_PER_DAY, allow_inf_nan=False,
        description="The privacy cost per member-day if this request opens a new table family (default: the "
                    "co-op's); a family already open keeps its own")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _dates_are_iso(cls, value: Any) -> Any:
        return _iso_date(value)

    @model_validator(mode="after")
    def _period_is_aligned(self) -> _DatasetShape:
        if self.start >= self.end:
            raise ValueError("start must be before end (end is exclusive)")
        if self.time_bucket == "week" and (self.start.weekday() != 0 or self.end.weekday() != 0):
            raise ValueError("weekly buckets start on Monday: start and end must both be Mondays")
        return self


class DatasetSpecCreate(_DatasetShape):
    """A DatasetSpec as a modeller sends it: ``k`` may be left out (the co-op's k floor applies)."""

    k: int | None = Field(default=None, strict=True, ge=ABSOLUTE_K_FLOOR,
                          description="Minimum distinct members per published row; at least the k floor")


class DatasetSpec(_DatasetShape):
    """The dataset a licence covers, as stored on the request and the licence (``k`` always set)."""

    k: int = Field(strict=True, ge=ABSOLUTE_K_FLOOR)


class LicenceRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    purpose: str = Field(min_length=1, max_length=60, description="A purpose code from GET /v1/purposes")
    organisation: Organisation
    public_benefit: Statement
    description: LongText
    dataset: DatasetSpecCreate
    duration_days: int = Field(strict=True, ge=1, le=MAX_DURATION_DAYS)
    fee_pence: int = Field(strict=True, ge=0, le=MAX_FEE_PENCE)


class VoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision
    comment: str | None = Field(default=None, max_length=2000)
    conflict_of_interest: bool = Field(default=False, strict=True,
                                       description="A vote declaring a conflict counts as an abstention")


class RevokeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ShortText


class VotePublic(BaseModel):
    vote_id: str
    voter_id: str
    decision: Decision
    counted_as: Decision
    comment: str | None
    conflict_of_interest: bool
    at: datetime


class VoteCast(VotePublic):
    """A vote just cast, with the state of its request afterwards."""

    request_id: str
    request_status: RequestStatus
    licence_id: str | None


class RequestPrivacy(BaseModel):
    """What approving the request costs the co-op's privacy budget (shown to the board before voting)."""

    family_id: str | None = Field(description="The open family the licence would read; null if it opens one")
    opens_family: bool
    epsilon_per_day: float = Field(description="The family's epsilon per member-day (a new one's: the "
                                               "request's, else the co-op default)")
    remaining_epsilon_per_day: float = Field(description="The budget left now, before this approval")


class LicenceRequestPublic(BaseModel):
    request_id: str
    status: RequestStatus
    requester_id: str
    title: str
    purpose: str
    organisation: str
    public_benefit: str
    description: str
    dataset: DatasetSpec
    duration_days: int
    fee_pence: int
    created_at: datetime
    decided_at: datetime | None
    votes: list[VotePublic]
    licence_id: str | None
    privacy: RequestPrivacy


class LicencePublic(BaseModel):
    licence_id: str
    request_id: str
    licensee_account_id: str
    organisation: str
    purpose: str
    dataset: DatasetSpec
    k: int
    fee_pence: int
    paid_pence: int
    status: LicenceStatus
    valid_from: datetime
    valid_until: datetime
    terms_version: str
    family_id: str | None
    document: dict[str, Any]
    jws: str


class AuditEventPublic(BaseModel):
    event_id: str
    at: datetime
    actor_id: str | None
    action: str
    subject_type: str
    subject_id: str
    detail: dict[str, Any]
