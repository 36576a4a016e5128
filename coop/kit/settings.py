"""Settings from the environment (prefix ``COOP_``).

Invariants: ``k_floor`` is never below 2; secrets are ``SecretStr`` so they never print.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

FINEST_RESOLUTION = 10
COARSEST_RESOLUTION = 7


class Settings(BaseSettings):
    """Every knob of the service; read once per process by :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="COOP_", extra="ignore")

    name: str = "Liverpool City Region Residents' Data Co-op"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    k_floor: int = Field(default=10, ge=2)
    board_quorum: int = Field(default=2, ge=1)
    retention_days: int = Field(default=30, ge=1)
    max_accuracy_m: float = Field(default=500.0, gt=0)
    terms_version: str = "2026-11"
    reserve_bps: int = Field(default=2000, ge=0, le=10000)

    master_key: SecretStr | None = None
    """Base64url of 32 bytes; unset means ``DATA_DIR/master.key`` (created on first start, 0600)."""
    signing_key: SecretStr | None = None
    """Base64url of a 32-byte Ed25519 seed; unset means ``DATA_DIR/signing.key``."""

    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    ingest_rate_per_minute: int = Field(default=600, ge=1)
    """Ingest requests per token per minute."""
    signup_rate_per_hour: int = Field(default=20, ge=1)
    """Sign-ups per client address per hour."""
    invitation_failures_per_hour: int = Field(default=10, ge=1)
    """Sign-ups with a wrong (unknown, used or expired) invitation code per client address per hour;
    past it every sign-up from that address carrying a code is 429 until the window frees."""
    require_verification: bool = True
    """Only verified members (invitation code or an admin) count in sealed tables; false: everyone does."""
    db_statement_timeout_ms: int = Field(default=60_000, ge=0)
    """PostgreSQL: the server cancels any one statement of the app running longer (0 = no limit)."""
    export_rate_per_hour: int = Field(default=12, ge=1)
    """Full data exports (``GET /v1/me/export``) per member per hour."""
    privacy_budget_per_day: float = Field(default=2.0, gt=0)
    """The co-op-wide cap on the sum of ``epsilon_per_day`` over every open table family."""
    family_epsilon_per_day: float = Field(default=0.5, gt=0)
    """A new family's ``epsilon_per_day`` when its first licence's DatasetSpec names none."""
    dp_delta: float = Field(default=1e-7, gt=0, lt=1)
    """Delta per member-day of every family opened from now on."""
    seal_lateness_hours: float = Field(default=48.0, ge=0)
    """A bucket is sealed once it ended at least this long ago (later pings are never aggregated)."""
    seal_interval_s: float = Field(default=60.0, gt=0)
    """How often the sealing loop of ``coop serve`` looks for buckets that are due."""
    stay_radius_m: float = Field(default=200.0, gt=0)
    """Stays (and od trips): a run of pings within this distance of its first ping ..."""
    stay_min_minutes: float = Field(default=15.0, ge=0)
    """... lasting at least this long. Keep both fixed once stays or od families are open."""

    @property
    def finest_resolution(self) -> int:
        return FINEST_RESOLUTION

    @property
    def coarsest_resolution(self) -> int:
        return COARSEST_RESOLUTION

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, else the embedded SQLite database in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'coop.db').as_posix()}"

    @property
    def releases_dir(self) -> Path:
        return self.data_dir / "releases"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache to change them)."""
    return Settings()
