"""The one-pass validator: the fast typed path agrees with the per-ping path on every batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from coop.ingest.codec import decode_payload, encode_payload
from coop.ingest.decoding import _STRICT_BATCH, _finish_strict, decode_native_batch
from coop.ingest.validation import CleanPing, Window, validate_pings

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
WINDOW = Window.at(NOW, retention_days=30, max_accuracy_m=500.0)


def _moment(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


timestamps = st.one_of(
    st.integers(min_value=-10, max_value=60 * 24 * 40).map(lambda m: _moment(m).isoformat()),
    st.integers(min_value=-10, max_value=60 * 24 * 40).map(lambda m: _moment(m).isoformat().replace("+00:00", "Z")),
    st.integers(min_value=0, max_value=60 * 24 * 40).map(
        lambda m: _moment(m).astimezone(datetime.now().astimezone().tzinfo).isoformat()),
    st.integers(min_value=-10, max_value=60 * 24 * 40).map(lambda m: _moment(m).timestamp()),
    st.integers(min_value=-10, max_value=60 * 24 * 40).map(lambda m: int(_moment(m).timestamp())),
    st.sampled_from(["2026-11-20T08:00:00", "2026-11-20T08:00:00+0000", "yesterday", "", "2026-11-20"]),
    st.none(), st.booleans(),
)
numbers = st.one_of(st.floats(min_value=-400, max_value=400, allow_nan=False, allow_infinity=False),
                    st.integers(min_value=-400, max_value=400), st.just(0), st.just(0.0),
                    st.sampled_from([1e300, -1e300, 10**30]), st.none(), st.booleans(), st.text(max_size=3))
small_numbers = st.one_of(st.none(), st.floats(min_value=-2, max_value=1200, allow_nan=False),
                          st.integers(min_value=-2, max_value=1200), st.text(max_size=2))
ids = st.one_of(st.text(min_size=0, max_size=70), st.integers(), st.none())
pings = st.fixed_dictionaries(
    {"id": ids, "ts": timestamps, "lat": numbers, "lng": numbers},
    optional={"accuracy_m": small_numbers, "speed_mps": small_numbers, "altitude_m": small_numbers,
              "heading_deg": small_numbers, "battery": small_numbers,
              "activity": st.one_of(st.none(), st.text(max_size=70), st.integers()),
              "extra": st.text(max_size=3)},
)
mostly_valid = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=64), "ts": timestamps,
     "lat": st.floats(min_value=-90, max_value=90), "lng": st.floats(min_value=-180, max_value=180)},
    optional={"accuracy_m": st.floats(min_value=0, max_value=700), "battery": st.floats(min_value=0, max_value=1),
              "activity": st.text(min_size=1, max_size=64)},
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(batch=st.lists(st.one_of(pings, mostly_valid, st.integers(), st.lists(st.integers(), max_size=2)),
                      min_size=1, max_size=4))
def test_fast_path_agrees_with_the_per_ping_validator(batch: list[Any]) -> None:
    raw = json.dumps({"pings": batch}).encode()
    expected = validate_pings(json.loads(raw)["pings"], WINDOW)
    assert decode_native_batch(raw, window=WINDOW, max_batch=1000) == expected
    try:
        strict = _STRICT_BATCH.decode(raw)
    except msgspec.MsgspecError:
        event("structurally invalid: the per-ping path answers")
        return
    event("structurally valid: the fast path answers")
    assert _finish_strict(strict.pings, WINDOW) == expected


@given(ping=mostly_valid)
def test_payload_encoding_round_trips(ping: dict[str, Any]) -> None:
    clean = CleanPing(0, "x", 0, ping["lat"], ping["lng"], ping.get("accuracy_m"), None, None, None,
                      ping.get("battery"), ping.get("activity"))
    payload = decode_payload(encode_payload(clean))
    assert (payload.lat, payload.lng, payload.accuracy_m, payload.battery, payload.activity) == (
        clean.lat, clean.lng, clean.accuracy_m, clean.battery, clean.activity)


@hypothesis_settings(max_examples=300, deadline=None)
@given(batch=st.lists(mostly_valid, min_size=1, max_size=5))
def test_fast_path_agrees_on_mostly_valid_batches(batch: list[dict[str, Any]]) -> None:
    raw = json.dumps({"pings": batch}).encode()
    expected = validate_pings(batch, WINDOW)
    assert decode_native_batch(raw, window=WINDOW, max_batch=1000) == expected
