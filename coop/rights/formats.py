"""Streaming encoders: batches of decrypted pings in, UTF-8 chunks out (one chunk per batch).

Invariants: the output is a complete, valid document once the input is exhausted (a JSON array, a
GeoJSON FeatureCollection of Points with ``[lng, lat]`` coordinates, or CSV with a header row);
floats are written with ``repr`` so they read back as the same float; nothing is held beyond one batch.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Generator, Iterable

from coop.rights.pings import PingRecord, format_ts, ping_dict
from coop.rights.schemas import PING_FIELDS

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def json_array_chunks(batches: Iterable[list[PingRecord]]) -> Generator[str, None, None]:
    """``[ping, ping, ...]`` in the ingest Ping shape."""
    yield "["
    first = True
    for batch in batches:
        if not batch:
            continue
        text = ",".join(_dumps(ping_dict(record)) for record in batch)
        yield text if first else "," + text
        first = False
    yield "]"


def _feature(record: PingRecord) -> dict[str, object]:
    properties = ping_dict(record)
    lat, lng = properties.pop("lat"), properties.pop("lng")
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lng, lat]},
            "properties": properties}


def geojson_chunks(batches: Iterable[list[PingRecord]]) -> Generator[str, None, None]:
    """A FeatureCollection: one Point Feature per ping; the other fields are its properties."""
    yield '{"type":"FeatureCollection","features":['
    first = True
    for batch in batches:
        if not batch:
            continue
        text = ",".join(_dumps(_feature(record)) for record in batch)
        yield text if first else "," + text
        first = False
    yield "]}"


def csv_chunks(batches: Iterable[list[PingRecord]]) -> Generator[str, None, None]:
    """CSV (RFC 4180, ``\\r\\n``): the header ``id,ts,lat,lng,...`` then one row per ping, empty = null."""
    yield ",".join(PING_FIELDS) + "\r\n"
    for batch in batches:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows(
            (record.client_id, format_ts(record.ts_ms), repr(p.lat), repr(p.lng),
             *(None if value is None else repr(value)
               for value in (p.accuracy_m, p.speed_mps, p.altitude_m, p.heading_deg, p.battery)),
             p.activity)
            for record in batch for p in (record.payload,))
        yield buffer.getvalue()


def encoded(chunks: Iterable[str]) -> Generator[bytes, None, None]:
    for chunk in chunks:
        if chunk:
            yield chunk.encode("utf-8")
