"""Per-ping validation of a native batch, in one pass and without a model object per ping.

Invariants:
- ``validate_pings`` never raises on any JSON value: each element is either a ``CleanPing`` or a
  ``Rejection`` whose ``reason`` is one of ``REASONS`` (the first check that failed).
- A ``CleanPing`` has a printable 1..64 character id, a finite in-range position that is not (0, 0),
  a time in ``[now - retention, now + 5 min]`` as integer epoch milliseconds, and optional fields that
  are finite numbers inside their documented bounds (or ``None``).
- A ``Rejection`` echoes the ping's id only when the id itself is valid (never a huge or binary string).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeGuard

from coop.ingest.fields import (
    ALTITUDE_MAX_M,
    ALTITUDE_MIN_M,
    BATTERY_MAX,
    BATTERY_MIN,
    FUTURE_TOLERANCE_MS,
    HEADING_MAX_DEG,
    LAT_LIMIT_DEG,
    LNG_LIMIT_DEG,
    MAX_ACTIVITY_CHARS,
    MAX_ID_CHARS,
    SPEED_MAX_MPS,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

# Reasons a ping is rejected (documented in docs/ingest.md).
NOT_AN_OBJECT = "not_an_object"
INVALID_ID = "invalid_id"
INVALID_TS = "invalid_ts"
TS_IN_FUTURE = "ts_in_future"
TS_TOO_OLD = "ts_too_old"
INVALID_LAT = "invalid_lat"
INVALID_LNG = "invalid_lng"
LAT_NOT_FINITE = "lat_not_finite"
LNG_NOT_FINITE = "lng_not_finite"
LAT_OUT_OF_RANGE = "lat_out_of_range"
LNG_OUT_OF_RANGE = "lng_out_of_range"
NULL_ISLAND = "null_island"
ACCURACY_TOO_POOR = "accuracy_too_poor"
INVALID_ACCURACY = "invalid_accuracy_m"
INVALID_SPEED = "invalid_speed_mps"
INVALID_ALTITUDE = "invalid_altitude_m"
INVALID_HEADING = "invalid_heading_deg"
INVALID_BATTERY = "invalid_battery"
INVALID_ACTIVITY = "invalid_activity"

REASONS = (
    NOT_AN_OBJECT, INVALID_ID, INVALID_TS, TS_IN_FUTURE, TS_TOO_OLD, INVALID_LAT, INVALID_LNG,
    LAT_NOT_FINITE, LNG_NOT_FINITE, LAT_OUT_OF_RANGE, LNG_OUT_OF_RANGE, NULL_ISLAND, ACCURACY_TOO_POOR,
    INVALID_ACCURACY, INVALID_SPEED, INVALID_ALTITUDE, INVALID_HEADING, INVALID_BATTERY, INVALID_ACTIVITY,
)

# Inclusive bounds of the optional numeric fields (accuracy's upper bound is the configured limit).


class CleanPing(NamedTuple):
    """A ping that passed validation (``position`` is its index in the request)."""

    position: int
    client_id: str
    ts_ms: int
    lat: float
    lng: float
    accuracy_m: float | None = None
    speed_mps: float | None = None
    altitude_m: float | None = None
    heading_deg: float | None = None
    battery: float | None = None
    activity: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    client_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Window:
    """What the clock and the settings allow: ``oldest_ms <= ts_ms <= newest_ms``, accuracy limit."""

    oldest_ms: int
    newest_ms: int
    max_accuracy_m: float

    @classmethod
    def at(cls, now: datetime, *, retention_days: int, max_accuracy_m: float) -> Window:
        now_ms = (now - _EPOCH) // _ONE_MS
        return cls(oldest_ms=now_ms - retention_days * 86_400_000, newest_ms=now_ms + FUTURE_TOLERANCE_MS,
                   max_accuracy_m=max_accuracy_m)


class PingRejected(Exception):
    """Internal: carries the reason out of the per-field checks."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _is_valid_id(value: Any) -> TypeGuard[str]:
    return type(value) is str and 0 < len(value) <= MAX_ID_CHARS and value.isprintable()


def parse_ts_ms(value: Any) -> int:
    """Epoch milliseconds of an RFC 3339 string (an offset is required) or of epoch seconds."""
    kind = type(value)
    if kind is int or kind is float:
        if not math.isfinite(value) or abs(value) > 1e11:
            raise PingRejected(INVALID_TS)
        milliseconds: int = round(value * 1000)
        return milliseconds
    if kind is not str or len(value) > 40:
        raise PingRejected(INVALID_TS)
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise PingRejected(INVALID_TS)
        parsed_ms: int = round(parsed.timestamp() * 1000)
        return parsed_ms
    except (ValueError, OverflowError) as exc:
        raise PingRejected(INVALID_TS) from exc


def _coordinate(value: Any, *, limit: float, invalid: str, not_finite: str, out_of_range: str) -> float:
    kind = type(value)
    if kind is float:
        if -limit <= value <= limit:
            return value  # type: ignore[no-any-return]
        raise PingRejected(out_of_range if math.isfinite(value) else not_finite)
    if kind is not int:
        raise PingRejected(invalid)
    if not -limit <= value <= limit:
        raise PingRejected(out_of_range)
    return float(value)


def _bounded(value: Any, *, low: float, high: float, reason: str) -> float:
    """A number in ``[low, high]`` (NaN and infinities fail the comparison)."""
    kind = type(value)
    if (kind is not float and kind is not int) or not low <= value <= high:
        raise PingRejected(reason)
    return float(value)


def _activity(value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= MAX_ACTIVITY_CHARS or not value.isprintable():
        raise PingRejected(INVALID_ACTIVITY)
    return value


def _clean(index: int, item: dict[str, Any], client_id: str, window: Window) -> CleanPing:
    ts_ms = parse_ts_ms(item.get("ts"))
    if ts_ms > window.newest_ms:
        raise PingRejected(TS_IN_FUTURE)
    if ts_ms < window.oldest_ms:
        raise PingRejected(TS_TOO_OLD)
    lat = _coordinate(item.get("lat"), limit=LAT_LIMIT_DEG, invalid=INVALID_LAT, not_finite=LAT_NOT_FINITE,
                      out_of_range=LAT_OUT_OF_RANGE)
    lng = _coordinate(item.get("lng"), limit=LNG_LIMIT_DEG, invalid=INVALID_LNG, not_finite=LNG_NOT_FINITE,
                      out_of_range=LNG_OUT_OF_RANGE)
    if lat == 0.0 and lng == 0.0:
        raise PingRejected(NULL_ISLAND)
    accuracy = item.get("accuracy_m")
    if accuracy is not None:
        kind = type(accuracy)
        if (kind is not float and kind is not int) or not 0 <= accuracy < math.inf:
            raise PingRejected(INVALID_ACCURACY)
        if accuracy > window.max_accuracy_m:
            raise PingRejected(ACCURACY_TOO_POOR)
        accuracy = float(accuracy)
    if len(item) <= 4:  # id, ts, lat, lng (and perhaps accuracy_m): nothing else to look at
        return CleanPing(index, client_id, ts_ms, lat, lng, accuracy)
    speed, altitude, heading, battery, activity = (item.get("speed_mps"), item.get("altitude_m"),
                                                   item.get("heading_deg"), item.get("battery"),
                                                   item.get("activity"))
    if speed is not None:
        speed = _bounded(speed, low=0.0, high=SPEED_MAX_MPS, reason=INVALID_SPEED)
    if altitude is not None:
        altitude = _bounded(altitude, low=ALTITUDE_MIN_M, high=ALTITUDE_MAX_M, reason=INVALID_ALTITUDE)
    if heading is not None:
        heading = _bounded(heading, low=0.0, high=HEADING_MAX_DEG, reason=INVALID_HEADING)
    if battery is not None:
        battery = _bounded(battery, low=BATTERY_MIN, high=BATTERY_MAX, reason=INVALID_BATTERY)
    if activity is not None:
        activity = _activity(activity)
    return CleanPing(index, client_id, ts_ms, lat, lng, accuracy, speed, altitude, heading, battery, activity)


def validate_pings(items: Sequence[Any], window: Window) -> tuple[list[CleanPing], list[Rejection]]:
    """Split ``items`` into clean pings and rejections (in request order)."""
    clean: list[CleanPing] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(items):
        if type(item) is not dict:
            rejected.append(Rejection(index, None, NOT_AN_OBJECT))
            continue
        client_id = item.get("id")
        if not _is_valid_id(client_id):
            rejected.append(Rejection(index, None, INVALID_ID))
            continue
        try:
            clean.append(_clean(index, item, client_id, window))
        except PingRejected as rejection:
            rejected.append(Rejection(index, client_id, rejection.reason))
    return clean, rejected
