"""Request and response shapes of the releases API (responses never expose table models)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ReleaseCreate(BaseModel):
    """A period of whole buckets inside the licence's period; ``end`` is exclusive."""

    model_config = ConfigDict(extra="forbid")

    start: date
    end: date


class ReleaseQueued(BaseModel):
    release_id: str
    status: str = Field(description="queued | building | ready | failed")
    progress: float = Field(ge=0, le=1)


class ReleaseFile(BaseModel):
    name: str
    media_type: str
    bytes: int
    sha256: str


class ReleaseStats(BaseModel):
    rows: int
    generalised_rows: int
    suppressed_contributions: int
    pings_considered: int


class ReleaseManifest(BaseModel):
    """The manifest; once ready, ``jws`` signs every other field (verify against ``GET /v1/coop``'s JWKS)."""

    release_id: str
    licence_id: str
    purpose: str
    dataset: dict[str, Any]
    k: int
    start: str
    end: str
    status: str
    progress: float
    built_at: str | None
    stats: ReleaseStats | None
    files: list[ReleaseFile]
    error: str | None
    jws: str | None


class DownloadPublic(BaseModel):
    download_id: str
    release_id: str
    account_id: str
    file_name: str
    at: datetime


class UsagePublic(BaseModel):
    release_id: str
    licence_id: str
    organisation: str
    purpose: str
    built_at: datetime
    contribution_units: int
