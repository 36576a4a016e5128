"""Privacy-zone geometry, sealed under the member's data key.

Invariants: a zone's centre, radius and label exist in the database only as AES-GCM ciphertext whose
AAD binds it to the zone id; containment is great-circle distance <= radius (haversine, metres).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from coop.kit.crypto import DataKey

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class ZoneGeometry:
    lat: float
    lng: float
    radius_m: float
    label: str | None = None


def _aad(zone_id: str) -> bytes:
    return b"privacy-zone:" + zone_id.encode()


def seal_zone(data_key: DataKey, zone: ZoneGeometry, *, zone_id: str) -> bytes:
    plaintext = json.dumps([zone.lat, zone.lng, zone.radius_m, zone.label], separators=(",", ":")).encode()
    return data_key.encrypt(plaintext, _aad(zone_id))


def open_zone(data_key: DataKey, blob: bytes, *, zone_id: str) -> ZoneGeometry:
    lat, lng, radius_m, label = json.loads(data_key.decrypt(blob, _aad(zone_id)))
    return ZoneGeometry(lat=float(lat), lng=float(lng), radius_m=float(radius_m), label=label)


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def in_any_zone(zones: list[ZoneGeometry], lat: float, lng: float) -> bool:
    return any(distance_m(z.lat, z.lng, lat, lng) <= z.radius_m for z in zones)
