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
    """The only statistic a manifest carries: how many rows the release's files hold. (Releases built
    before sealed tables carry more keys in their signed manifests; they are served as signed.)"""

    model_config = ConfigDict(extra="allow")

    rows: int


class ReleasePrivacy(BaseModel):
    """The family's public differential-privacy parameters (the same for every release of the family)."""

    mechanism: str
    privacy_unit: str = Field(description="member-day")
    epsilon_per_day: float
    delta: float
    tau: int = Field(description="every published count is at least tau")
    contribution_bound: int = Field(description="L: cells (or od pairs) one member counts in per bucket")


class ReleaseManifest(BaseModel):
    """The manifest; once ready, ``jws`` signs every other field (verify against ``GET /v1/coop``'s JWKS).

    ``family_id`` and ``privacy`` are null only in the signed manifests of releases built before sealed
    tables existed (served exactly as signed)."""

    release_id: str
    licence_id: str
    family_id: str | None = None
    purpose: str
    dataset: dict[str, Any]
    k: int
    start: str
    end: str
    status: str
    progress: float
    built_at: str | None
    stats: ReleaseStats | None
    privacy: ReleasePrivacy | None = None
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
