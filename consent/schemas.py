"""Request and response shapes for purposes, consent, receipts, collection pause and privacy zones.

Request models are strict (no coercion of ``"yes"`` to ``true`` or ``"51.5"`` to a number) and refuse
unknown fields; coordinates must be finite and in range.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MIN_ZONE_RADIUS_M = 50
MAX_ZONE_RADIUS_M = 5000

ConsentState = Literal["given", "withdrawn", "not_given"]


class PurposePublic(BaseModel):
    code: str
    title: str
    description: str
    dpv: str
    policy_version: str


class CoopPublic(BaseModel):
    name: str
    terms_version: str
    k_floor: int
    finest_resolution: int
    coarsest_resolution: int
    purposes: list[PurposePublic]
    jwks: dict[str, list[dict[str, str]]]


class ConsentUpdate(BaseModel):
    """``PUT /v1/me/consents/{purpose}``: give (``true``) or withdraw (``false``) under a policy version."""

    model_config = ConfigDict(extra="forbid", strict=True)

    given: bool
    policy_version: str = Field(min_length=1, max_length=50)


class SignedReceipt(BaseModel):
    """A consent receipt and its compact JWS (whose payload is the receipt's JSON)."""

    receipt: dict[str, Any]
    jws: str


class ConsentPublic(BaseModel):
    """A member's current consent to one purpose."""

    purpose: str
    state: ConsentState
    policy_version: str | None = Field(description="The policy version of the latest event (null if none)")
    current_policy_version: str = Field(description="The purpose's policy version now in force")
    changed_at: datetime | None
    receipt_id: str | None


class ConsentChanged(ConsentPublic):
    """The answer to a PUT: the purpose's state and the signed receipt of its latest event."""

    receipt: SignedReceipt | None


class ConsentEventPublic(BaseModel):
    event_id: str
    purpose: str
    state: Literal["given", "withdrawn"]
    policy_version: str
    at: datetime
    method: str
    receipt_id: str


class CollectionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    paused: bool


class CollectionPublic(BaseModel):
    paused: bool


class PrivacyZoneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)
    radius_m: float = Field(ge=MIN_ZONE_RADIUS_M, le=MAX_ZONE_RADIUS_M, allow_inf_nan=False)
    label: str | None = Field(default=None, max_length=100)


class PrivacyZonePublic(BaseModel):
    zone_id: str
    lat: float
    lng: float
    radius_m: float
    label: str | None
    created_at: datetime


class PrivacyZoneCreated(PrivacyZonePublic):
    pings_deleted: int
    """The member's stored pings inside the new zone, deleted when it was created."""
