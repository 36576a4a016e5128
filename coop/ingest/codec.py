"""The sealed part of a stored ping: exact coordinates and optional fields, AES-GCM under the member's key.

Invariants:
- Plaintext layout (little-endian): version byte ``1``, a presence bitmask byte, ``lat`` and ``lng`` as
  float64, then each present optional field in ``OPTIONAL_FIELDS`` order as float64, then (bit 5) the
  activity as a uint16 length and UTF-8 bytes. Floats are stored exactly as received.
- The AAD is ``ping:<member_no>:<client_id>``, so a blob moved to another member or another row of the
  same member does not decrypt.
- Nothing here touches the database; ``seal_ping``/``open_ping`` are exact inverses.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from coop.ingest.validation import CleanPing
from coop.kit.crypto import DataKey

FORMAT_VERSION = 1
OPTIONAL_FIELDS = ("accuracy_m", "speed_mps", "altitude_m", "heading_deg", "battery")
ACTIVITY_BIT = 1 << len(OPTIONAL_FIELDS)
_HEADER = struct.Struct("<BBdd")
_LENGTH = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class PingPayload:
    """The decrypted content of a stored ping."""

    lat: float
    lng: float
    accuracy_m: float | None = None
    speed_mps: float | None = None
    altitude_m: float | None = None
    heading_deg: float | None = None
    battery: float | None = None
    activity: str | None = None


_LAYOUTS = tuple(struct.Struct("<BBdd" + "d" * bin(mask).count("1")) for mask in range(ACTIVITY_BIT))


def _layout(mask: int) -> struct.Struct:
    return _LAYOUTS[mask & (ACTIVITY_BIT - 1)]


def ping_aad(member_no: int, client_id: str) -> bytes:
    return b"ping:%d:" % member_no + client_id.encode("utf-8")


def encode_payload(ping: CleanPing) -> bytes:
    """The plaintext for ``ping`` (see the module docstring for the layout)."""
    _position, _client_id, _ts_ms, lat, lng, accuracy, speed, altitude, heading, battery, activity = ping
    mask = ((accuracy is not None) | (speed is not None) << 1 | (altitude is not None) << 2
            | (heading is not None) << 3 | (battery is not None) << 4)
    if not mask and activity is None:
        return _HEADER.pack(FORMAT_VERSION, 0, lat, lng)
    present = [value for value in (accuracy, speed, altitude, heading, battery) if value is not None]
    if activity is None:
        return _LAYOUTS[mask].pack(FORMAT_VERSION, mask, lat, lng, *present)
    encoded = activity.encode("utf-8")
    return (_LAYOUTS[mask].pack(FORMAT_VERSION, mask | ACTIVITY_BIT, lat, lng, *present)
            + _LENGTH.pack(len(encoded)) + encoded)


def decode_payload(plaintext: bytes) -> PingPayload:
    version, mask = plaintext[0], plaintext[1]
    if version != FORMAT_VERSION:
        raise ValueError(f"unknown ping payload version {version}")
    layout = _layout(mask)
    _version, _mask, lat, lng, *present = layout.unpack_from(plaintext)
    values: dict[str, float | None] = dict.fromkeys(OPTIONAL_FIELDS)
    position = 0
    for bit, name in enumerate(OPTIONAL_FIELDS):
        if mask & (1 << bit):
            values[name] = present[position]
            position += 1
    activity: str | None = None
    if mask & ACTIVITY_BIT:
        (length,) = _LENGTH.unpack_from(plaintext, layout.size)
        start = layout.size + _LENGTH.size
        activity = plaintext[start:start + length].decode("utf-8")
    return PingPayload(lat=lat, lng=lng, activity=activity, **values)


def seal_ping(data_key: DataKey, ping: CleanPing, *, member_no: int) -> bytes:
    return data_key.encrypt(encode_payload(ping), ping_aad(member_no, ping.client_id))


def seal_pings(data_key: DataKey, pings: Sequence[CleanPing], *, member_no: int) -> list[bytes]:
    """``seal_ping`` for a whole batch (one call for all the random nonces)."""
    prefix = b"ping:%d:" % member_no
    return data_key.encrypt_many([(encode_payload(ping), prefix + ping.client_id.encode("utf-8"))
                                  for ping in pings])


def open_ping(data_key: DataKey, blob: bytes, *, member_no: int, client_id: str) -> PingPayload:
    """The decrypted payload of a stored ping (raises ``DecryptionError`` if it does not authenticate)."""
    return decode_payload(data_key.decrypt(blob, ping_aad(member_no, client_id)))
