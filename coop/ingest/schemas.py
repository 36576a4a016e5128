"""Request and response shapes of the ingest endpoints.

The request models document the bodies in OpenAPI; the bodies themselves are checked ping by ping in
one pass by ``coop.ingest.validation`` (a bad ping must not fail its batch). Responses are these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coop.ingest.fields import (
    ALTITUDE_MAX_M,
    ALTITUDE_MIN_M,
    BATTERY_MAX,
    BATTERY_MIN,
    HEADING_MAX_DEG,
    LAT_LIMIT_DEG,
    LNG_LIMIT_DEG,
    MAX_ACTIVITY_CHARS,
    MAX_ID_CHARS,
    MAX_PINGS_PER_BATCH,
    SPEED_MAX_MPS,
)


class PingIn(BaseModel):
    """One location ping as the app sends it."""

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Client-generated, unique per member")
    ts: str | float = Field(description="RFC 3339 with an offset, or epoch seconds")
    lat: float = Field(ge=-LAT_LIMIT_DEG, le=LAT_LIMIT_DEG)
    lng: float = Field(ge=-LNG_LIMIT_DEG, le=LNG_LIMIT_DEG)
    accuracy_m: float | None = Field(default=None, ge=0, description="At most the co-op's limit (500 m)")
    speed_mps: float | None = Field(default=None, ge=0, le=SPEED_MAX_MPS)
    altitude_m: float | None = Field(default=None, ge=ALTITUDE_MIN_M, le=ALTITUDE_MAX_M)
    heading_deg: float | None = Field(default=None, ge=0, le=HEADING_MAX_DEG)
    battery: float | None = Field(default=None, ge=BATTERY_MIN, le=BATTERY_MAX)
    activity: str | None = Field(default=None, min_length=1, max_length=MAX_ACTIVITY_CHARS)


class PingBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pings: list[PingIn] = Field(min_length=1, max_length=MAX_PINGS_PER_BATCH)


class OverlandBatchIn(BaseModel):
    """Overland's body: GeoJSON Point Features with ``[lon, lat]`` coordinates (other keys ignored)."""

    locations: list[dict[str, Any]] = Field(max_length=MAX_PINGS_PER_BATCH)


class OwnTracksMessageIn(BaseModel):
    """One OwnTracks message; only ``_type: location`` is ingested (other keys ignored)."""

    model_config = ConfigDict(populate_by_name=True)

    type_: str = Field(alias="_type")
    lat: float | None = None
    lon: float | None = None
    tst: int | None = Field(default=None, description="epoch seconds")
    acc: float | None = Field(default=None, description="metres")
    alt: float | None = Field(default=None, description="metres")
    vel: float | None = Field(default=None, description="km/h")
    batt: float | None = Field(default=None, description="percent")
    cog: float | None = Field(default=None, description="course over ground, degrees")
    tid: str | None = None


class DroppedCounts(BaseModel):
    """Valid pings that were not stored, by reason (consent gate order)."""

    no_consent: int = 0
    paused: int = 0
    privacy_zone: int = 0


class RejectedPing(BaseModel):
    index: int = Field(description="Position of the ping in the request")
    id: str | None = Field(description="The ping's id, or null when the id itself is missing or invalid")
    reason: str


class IngestResult(BaseModel):
    """Counts of one batch: every ping is in exactly one of accepted, duplicates, dropped or rejected."""

    accepted: int
    duplicates: int
    dropped: DroppedCounts
    rejected: list[RejectedPing]


class OverlandResult(BaseModel):
    result: Literal["ok"] = "ok"
    accepted: int
    duplicates: int
    dropped: DroppedCounts
    rejected: list[RejectedPing]
