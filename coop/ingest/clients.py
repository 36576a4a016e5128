"""Adapters from third-party location apps (OwnTracks, Overland) to native ping objects.

Invariants:
- Adapters never raise on any JSON value: whatever they cannot translate is passed on as is, so the
  native validator rejects it with its usual reasons.
- Units come out native: metres, metres per second, battery 0..1; "unknown" markers (negative values)
  become absent fields.
- A ping id is a digest of the point's content (time, position, device), so a resent point is a
  duplicate of the first one.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

OWNTRACKS_PREFIX = "ot-"
OVERLAND_PREFIX = "ov-"


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def content_id(prefix: str, *parts: Any) -> str:
    """``prefix`` and a 128-bit digest of the scalar ``parts`` (a stable id for a resent point)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if type(part) is str:
            token = part
        elif part is None or _is_number(part) or type(part) is bool:
            token = repr(part)
        else:
            token = type(part).__name__
        digest.update(token.encode("utf-8", "surrogatepass") + b"\x1f")
    return prefix + digest.hexdigest()


def _unknown_if_negative(value: Any) -> Any:
    return None if _is_number(value) and value < 0 else value


def _scaled(value: Any, *, numerator: int, denominator: int) -> Any:
    """``value * numerator / denominator`` for ordinary numbers; anything else unchanged."""
    if _is_number(value) and math.isfinite(value) and abs(value) < 1e15:
        return value * numerator / denominator
    return value


def owntracks_locations(body: Any) -> list[Any] | None:
    """The location messages of an OwnTracks body (one message, or a list); None if it is neither."""
    if type(body) is dict:
        messages: list[Any] = [body]
    elif type(body) is list:
        messages = body
    else:
        return None
    return [owntracks_ping(message) for message in messages
            if type(message) is dict and message.get("_type") == "location"]


def owntracks_ping(message: dict[str, Any]) -> dict[str, Any]:
    """A native ping from an OwnTracks ``location`` message (``vel`` km/h, ``batt`` %)."""
    tst, lat, lon = message.get("tst"), message.get("lat"), message.get("lon")
    return {
        "id": content_id(OWNTRACKS_PREFIX, tst, lat, lon, message.get("tid"), message.get("topic")),
        "ts": tst,
        "lat": lat,
        "lng": lon,
        "accuracy_m": _unknown_if_negative(message.get("acc")),
        "altitude_m": message.get("alt"),
        "speed_mps": _scaled(_unknown_if_negative(message.get("vel")), numerator=1000, denominator=3600),
        "heading_deg": _unknown_if_negative(message.get("cog")),
        "battery": _scaled(_unknown_if_negative(message.get("batt")), numerator=1, denominator=100),
    }


def overland_locations(body: Any) -> list[Any] | None:
    """The ``locations`` of an Overland body, as native pings; None if the body is not that shape."""
    if type(body) is not dict or type(body.get("locations")) is not list:
        return None
    return [overland_ping(feature) if type(feature) is dict else feature for feature in body["locations"]]


def overland_ping(feature: dict[str, Any]) -> dict[str, Any]:
    """A native ping from an Overland GeoJSON Point Feature (coordinates ``[lon, lat]``)."""
    geometry = feature.get("geometry")
    coordinates = geometry.get("coordinates") if type(geometry) is dict else None
    lng, lat = (coordinates[0], coordinates[1]) if type(coordinates) is list and len(coordinates) >= 2 else (
        None, None)
    properties = feature.get("properties")
    if type(properties) is not dict:
        properties = {}
    timestamp = properties.get("timestamp")
    motion = properties.get("motion")
    activity = motion[0] if type(motion) is list and motion else None
    return {
        "id": content_id(OVERLAND_PREFIX, timestamp, lng, lat, properties.get("device_id")),
        "ts": timestamp,
        "lat": lat,
        "lng": lng,
        "accuracy_m": _unknown_if_negative(properties.get("horizontal_accuracy")),
        "altitude_m": properties.get("altitude"),
        "speed_mps": _unknown_if_negative(properties.get("speed")),
        "heading_deg": _unknown_if_negative(properties.get("course")),
        "battery": _unknown_if_negative(properties.get("battery_level")),
        "activity": activity,
    }
