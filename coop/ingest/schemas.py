"""Request and response shapes of the ingest endpoints.

The request models document the bodies in OpenAPI; the bodies themselves are checked ping by ping in
one pass by ``coop.ingest.validation`` (a bad ping must not fail its batch). Responses are these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PingIn(BaseModel):
    """One location ping as the app sends it."""

    id: str = Field(min_length=1, max_length=64, description="Client-generated, unique per member")
    ts: str | float = Field(description="RFC 3339 with an offset, or epoch seconds")
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, description="At most the co-op's limit (500 m)")
    speed_mps: float | None = Field(default=None, ge=0, le=1000)
    altitude_m: float | None = Field(default=None, ge=-12000, le=100000)
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    battery: float | None = Field(default=None, ge=0, le=1)
    activity: str | None = Field(default=None, min_length=1, max_length=64)


class PingBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pings: list[PingIn] = Field(min_length=1, max_length=1000)


class OverlandBatchIn(BaseModel):
    """Overland's body: GeoJSON Point Features with ``[lon, lat]`` coordinates (other keys ignored)."""

    locations: list[dict[str, Any]] = Field(max_length=1000)


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
