"""The ping's fields and their bounds: the one definition that validation, the strict decoder and the
OpenAPI schema all read (contract: "Ingest").

Invariant: a bound changed here changes what the validator accepts, what the fast decoder accepts
and what the published schema says, together.
"""

from __future__ import annotations

MAX_ID_CHARS = 64
MAX_ACTIVITY_CHARS = 64
MAX_PINGS_PER_BATCH = 1000
LAT_LIMIT_DEG = 90.0
LNG_LIMIT_DEG = 180.0
SPEED_MAX_MPS = 1000.0
ALTITUDE_MIN_M, ALTITUDE_MAX_M = -12_000.0, 100_000.0
HEADING_MAX_DEG = 360.0
BATTERY_MIN, BATTERY_MAX = 0.0, 1.0
FUTURE_TOLERANCE_MS = 5 * 60 * 1000
OPTIONAL_FIELDS = ("accuracy_m", "speed_mps", "altitude_m", "heading_deg", "battery", "activity")
"""The optional fields, in the order they are stored (coop/ingest/codec.py packs them in this order)."""
