"""Response shapes of the rights endpoints.

A ping is returned in the ingest Ping shape: ``id`` (the client's id), ``ts`` (RFC 3339 UTC with ``Z``,
milliseconds only when present), ``lat``, ``lng`` and every optional field, ``null`` when absent.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

PING_FIELDS = ("id", "ts", "lat", "lng", "accuracy_m", "speed_mps", "altitude_m", "heading_deg", "battery",
               "activity")
"""The fields of a ping, in output order (also the CSV header)."""

EXPORT_FORMAT = "coop.member-export"
EXPORT_FORMAT_VERSION = 1


class PingFormat(StrEnum):
    JSON = "json"
    GEOJSON = "geojson"
    CSV = "csv"


class PingPublic(BaseModel):
    """One stored ping, decrypted, as the app sent it."""

    id: str = Field(description="The client-generated id")
    ts: str = Field(description="RFC 3339 UTC, e.g. 2026-11-21T09:00:00Z")
    lat: float
    lng: float
    accuracy_m: float | None
    speed_mps: float | None
    altitude_m: float | None
    heading_deg: float | None
    battery: float | None
    activity: str | None


class ErasurePublic(BaseModel):
    """What ``DELETE /v1/me`` did (counts are of this call; a repeat finds nothing left)."""

    erased: bool = True
    pings_deleted: int
    privacy_zones_deleted: int
    consents_withdrawn: int = Field(description="Purposes that were given and are now withdrawn")
    tokens_revoked: int
    erased_at: str = Field(description="When the account was first erased (RFC 3339)")
