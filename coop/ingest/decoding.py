"""Decoding of request bodies, with a one-pass fast path for native batches.

Invariants:
- ``decode_json`` accepts strict JSON only (RFC 8259: no NaN/Infinity, valid UTF-8 and surrogate pairs,
  numbers within double range, bounded nesting) and raises ``InvalidInput`` (422) otherwise.
- ``decode_native_batch`` gives exactly what ``validate_pings`` gives for the same body: the fast path
  (a typed msgspec decode of the whole batch, then the few checks that depend on settings, the clock
  or printability) is taken only when every ping is structurally valid; any structural problem falls
  back to the per-ping validator, which lists each bad ping with its reason.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

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
    SPEED_MAX_MPS,
)
from coop.ingest.validation import (
    ACCURACY_TOO_POOR,
    INVALID_ACTIVITY,
    INVALID_ID,
    NULL_ISLAND,
    TS_IN_FUTURE,
    TS_TOO_OLD,
    CleanPing,
    PingRejected,
    Rejection,
    Window,
    parse_ts_ms,
    validate_pings,
)
from coop.kit.errors import InvalidInput

_JSON = msgspec.json.Decoder()


ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
Latitude = Annotated[float, msgspec.Meta(ge=-LAT_LIMIT_DEG, le=LAT_LIMIT_DEG)]
Longitude = Annotated[float, msgspec.Meta(ge=-LNG_LIMIT_DEG, le=LNG_LIMIT_DEG)]
Accuracy = Annotated[float, msgspec.Meta(ge=0.0)]
Speed = Annotated[float, msgspec.Meta(ge=0.0, le=SPEED_MAX_MPS)]
Altitude = Annotated[float, msgspec.Meta(ge=ALTITUDE_MIN_M, le=ALTITUDE_MAX_M)]
Heading = Annotated[float, msgspec.Meta(ge=0.0, le=HEADING_MAX_DEG)]
Battery = Annotated[float, msgspec.Meta(ge=BATTERY_MIN, le=BATTERY_MAX)]
Activity = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ACTIVITY_CHARS)]


class _StrictPing(msgspec.Struct):
    """A structurally valid native ping (unknown fields are ignored, as in ``validate_pings``)."""

    id: ClientId
    ts: str | float
    lat: Latitude
    lng: Longitude
    accuracy_m: Accuracy | None = None
    speed_mps: Speed | None = None
    altitude_m: Altitude | None = None
    heading_deg: Heading | None = None
    battery: Battery | None = None
    activity: Activity | None = None


class _StrictBatch(msgspec.Struct, forbid_unknown_fields=True):
    pings: list[_StrictPing]


_STRICT_BATCH = msgspec.json.Decoder(_StrictBatch)


def decode_json(raw: bytes) -> Any:
    """The JSON value of ``raw``; 422 when it is not strict JSON."""
    try:
        return _JSON.decode(raw)
    except (msgspec.MsgspecError, RecursionError) as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from exc


def require_batch_size(items: list[Any], *, max_batch: int, field: str, minimum: int) -> list[Any]:
    if not minimum <= len(items) <= max_batch:
        raise InvalidInput(f'"{field}" must hold {minimum}..{max_batch} items, not {len(items)}',
                           errors=[{"loc": ["body", field], "msg": f"{minimum}..{max_batch} items",
                                    "type": "too_long" if len(items) > max_batch else "too_short"}])
    return items


def pings_of_native_body(body: Any, *, max_batch: int) -> list[Any]:
    """The ``pings`` list of a ``{"pings": [...]}`` body, or 422 when the body is not that shape."""
    if type(body) is not dict:
        raise InvalidInput('the body must be a JSON object {"pings": [...]}')
    extra = sorted(str(key)[:40] for key in body if key != "pings")
    if extra:
        raise InvalidInput("unknown top-level fields: " + ", ".join(extra[:5]),
                           errors=[{"loc": ["body", key], "msg": "unknown field", "type": "extra_forbidden"}
                                   for key in extra[:20]])
    pings = body.get("pings")
    if type(pings) is not list:
        raise InvalidInput('"pings" must be a list of ping objects',
                           errors=[{"loc": ["body", "pings"], "msg": "must be a list", "type": "list_type"}])
    return require_batch_size(pings, max_batch=max_batch, field="pings", minimum=1)


def decode_native_batch(raw: bytes, *, window: Window,
                        max_batch: int) -> tuple[list[CleanPing], list[Rejection]]:
    """Clean pings and rejections of a native ``{"pings": [...]}`` body (422 if it is not that shape)."""
    try:
        batch = _STRICT_BATCH.decode(raw)
    except (msgspec.MsgspecError, RecursionError):
        batch = None
    if batch is None or not 1 <= len(batch.pings) <= max_batch:
        pings = pings_of_native_body(decode_json(raw), max_batch=max_batch)
        return validate_pings(pings, window)
    return _finish_strict(batch.pings, window)


def _finish_strict(pings: list[_StrictPing], window: Window) -> tuple[list[CleanPing], list[Rejection]]:
    """The checks the typed decode cannot make, in the order ``validate_pings`` makes them."""
    clean: list[CleanPing] = []
    rejected: list[Rejection] = []
    oldest, newest, max_accuracy = window.oldest_ms, window.newest_ms, window.max_accuracy_m
    for position, ping in enumerate(pings):
        client_id = ping.id
        if not client_id.isprintable():
            rejected.append(Rejection(position, None, INVALID_ID))
            continue
        try:
            ts_ms = parse_ts_ms(ping.ts)
        except PingRejected as rejection:
            rejected.append(Rejection(position, client_id, rejection.reason))
            continue
        reason = None
        if ts_ms > newest:
            reason = TS_IN_FUTURE
        elif ts_ms < oldest:
            reason = TS_TOO_OLD
        elif ping.lat == 0.0 and ping.lng == 0.0:
            reason = NULL_ISLAND
        elif ping.accuracy_m is not None and ping.accuracy_m > max_accuracy:
            reason = ACCURACY_TOO_POOR
        elif ping.activity is not None and not ping.activity.isprintable():
            reason = INVALID_ACTIVITY
        if reason is not None:
            rejected.append(Rejection(position, client_id, reason))
            continue
        clean.append(CleanPing(position, client_id, ts_ms, ping.lat, ping.lng, ping.accuracy_m, ping.speed_mps,
                               ping.altitude_m, ping.heading_deg, ping.battery, ping.activity))
    return clean, rejected
