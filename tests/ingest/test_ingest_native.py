"""POST /v1/pings: validation per ping, duplicates, the consent gate, encryption at rest, atomicity."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from h3.api import basic_int

from coop.accounts.roles import Role
from coop.ingest import repository
from coop.ingest.models import Ping
from coop.kit.db import session_scope
from coop.kit.timeutil import rfc3339, utcnow
from tests.support.factories import make_account
from tests.support.ingest import (
    add_zone,
    consenting_member,
    count_all_pings,
    ping,
    record_consent,
    set_paused,
    stored_pings,
)


def post(client: TestClient, headers: dict[str, str], pings: list[Any]) -> dict[str, Any]:
    # json.dumps escapes lone surrogates (httpx's encoder cannot send them).
    response = client.post("/v1/pings", content=json.dumps({"pings": pings}),
                           headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_batch_is_stored_with_cell_and_time_in_clear_and_the_rest_sealed(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    sent = [
        ping("a", lat=53.4, lng=-2.98, accuracy_m=12.5, speed_mps=1.25, altitude_m=-3.5, heading_deg=359.9,
             battery=0.42, activity="walking"),
        ping("b", lat=53.41, lng=-2.99),
        {"id": "c", "ts": 0, "lat": 53.42, "lng": -2.97},
    ]
    epoch_s = int((utcnow() - timedelta(hours=2)).timestamp())
    sent[2]["ts"] = epoch_s
    body = post(client, member.headers, sent)
    assert body == {"accepted": 3, "duplicates": 0,
                    "dropped": {"no_consent": 0, "paused": 0, "privacy_zone": 0}, "rejected": []}

    stored = stored_pings(app, member.account_id)
    assert set(stored) == {"a", "b", "c"}
    a = stored["a"].payload
    assert (a.lat, a.lng, a.accuracy_m, a.speed_mps, a.altitude_m, a.heading_deg, a.battery, a.activity) == (
        53.4, -2.98, 12.5, 1.25, -3.5, 359.9, 0.42, "walking")
    b = stored["b"].payload
    assert (b.lat, b.lng) == (53.41, -2.99)
    assert (b.accuracy_m, b.speed_mps, b.altitude_m, b.heading_deg, b.battery, b.activity) == (None,) * 6
    assert stored["a"].cell == basic_int.latlng_to_cell(53.4, -2.98, 10)
    assert stored["c"].ts_ms == epoch_s * 1000


def test_ts_accepts_any_offset_and_keeps_milliseconds(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    moment = (utcnow() - timedelta(hours=1)).replace(microsecond=123000)
    ts_with_offset = moment.astimezone(timezone(timedelta(hours=-5, minutes=-30)))
    body = post(client, member.headers, [
        ping("z", ts=rfc3339(moment)),
        ping("offset", ts=ts_with_offset.isoformat()),
        ping("float", ts=moment.timestamp()),
    ])
    assert body["accepted"] == 3, body
    expected_ms = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert {p.ts_ms for p in stored_pings(app, member.account_id).values()} == {expected_ms}


BAD_PINGS: list[tuple[str, Any, str]] = [
    ("not an object (string)", "ping", "not_an_object"),
    ("not an object (list)", [1, 2], "not_an_object"),
    ("not an object (null)", None, "not_an_object"),
    ("missing id", {"id": None}, "invalid_id"),
    ("empty id", {"id": ""}, "invalid_id"),
    ("long id", {"id": "x" * 65}, "invalid_id"),
    ("numeric id", {"id": 12}, "invalid_id"),
    ("id with NUL", {"id": "a\u0000b"}, "invalid_id"),
    ("id with a control character", {"id": "a\nb"}, "invalid_id"),
    ("missing ts", {"ts": None}, "invalid_ts"),
    ("unparseable ts", {"ts": "yesterday"}, "invalid_ts"),
    ("ts without offset", {"ts": "2026-11-20T08:00:00"}, "invalid_ts"),
    ("boolean ts", {"ts": True}, "invalid_ts"),
    ("NaN string ts", {"ts": "NaN"}, "invalid_ts"),
    ("ts in the future", {"minutes_ago": -6}, "ts_in_future"),
    ("ts too old", {"minutes_ago": 31 * 24 * 60}, "ts_too_old"),
    ("lat as string", {"lat": "53.4"}, "invalid_lat"),
    ("lat missing", {"lat": None}, "invalid_lat"),
    ("lat boolean", {"lat": True}, "invalid_lat"),
    ("lat out of range", {"lat": 90.000001}, "lat_out_of_range"),
    ("lat hugely out of range", {"lat": 10**300}, "lat_out_of_range"),
    ("lng out of range", {"lng": -180.5}, "lng_out_of_range"),
    ("lng as object", {"lng": {"deg": 3}}, "invalid_lng"),
    ("null island", {"lat": 0, "lng": 0.0}, "null_island"),
    ("accuracy worse than the limit", {"accuracy_m": 500.01}, "accuracy_too_poor"),
    ("negative accuracy", {"accuracy_m": -1}, "invalid_accuracy_m"),
    ("accuracy as string", {"accuracy_m": "5"}, "invalid_accuracy_m"),
    ("negative speed", {"speed_mps": -0.1}, "invalid_speed_mps"),
    ("absurd altitude", {"altitude_m": 1e9}, "invalid_altitude_m"),
    ("heading over 360", {"heading_deg": 360.5}, "invalid_heading_deg"),
    ("battery as percent", {"battery": 87}, "invalid_battery"),
    ("empty activity", {"activity": ""}, "invalid_activity"),
    ("activity as list", {"activity": ["walking"]}, "invalid_activity"),
]


@pytest.mark.parametrize(("case", "bad", "reason"), BAD_PINGS, ids=[case for case, _, _ in BAD_PINGS])
def test_each_rejection_reason_and_the_rest_of_the_batch_is_stored(
        client: TestClient, app: FastAPI, case: str, bad: Any, reason: str) -> None:
    member = consenting_member(app)
    if isinstance(bad, dict):
        overrides = dict(bad)
        minutes_ago = overrides.pop("minutes_ago", 10)
        bad_ping = ping("bad", minutes_ago=minutes_ago)
        for key, value in overrides.items():
            if value is None:
                bad_ping.pop(key)
            else:
                bad_ping[key] = value
    else:
        bad_ping = bad
    body = post(client, member.headers, [ping("good-1"), bad_ping, ping("good-2")])
    expected_id = bad_ping.get("id") if isinstance(bad_ping, dict) and reason != "invalid_id" else None
    assert body["rejected"] == [{"index": 1, "id": expected_id, "reason": reason}], case
    assert body["accepted"] == 2
    assert set(stored_pings(app, member.account_id)) == {"good-1", "good-2"}


@pytest.mark.parametrize("literal", [
    '"lat": NaN', '"lat": Infinity', '"lng": -Infinity', '"lat": 1e400', '"ts": NaN', '"battery": Infinity',
    '"id": "a\\ud800"', '"activity": "\\udc00x"',
])
def test_bodies_that_are_not_strict_json_are_422(client: TestClient, app: FastAPI, literal: str) -> None:
    """NaN, infinities, numbers beyond double range and lone surrogates are not JSON (RFC 8259)."""
    member = consenting_member(app)
    bad = ping("bad")
    bad.pop(literal.split('"')[1], None)
    raw = '{"pings": [' + json.dumps(ping("good")) + ", " + json.dumps(bad)[:-1] + ", " + literal + "}]}"
    response = client.post("/v1/pings", content=raw,
                           headers={**member.headers, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "not valid JSON" in response.json()["detail"]
    assert count_all_pings(app) == 0


def test_boundaries_are_accepted(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    body = post(client, member.headers, [
        ping("pole", lat=90, lng=180), ping("south", lat=-90, lng=-180), ping("acc", accuracy_m=500),
        ping("soon", minutes_ago=-4), ping("old", minutes_ago=29 * 24 * 60), ping("north", heading_deg=360),
        ping("full", battery=1), ping("empty", battery=0), ping("lat-zero", lat=0, lng=0.0001),
        ping("unicode", activity="on foot 🚶"), ping("unknown-field", provider="gps"),
    ])
    assert body["rejected"] == []
    assert body["accepted"] == 11
    assert stored_pings(app, member.account_id)["unicode"].payload.activity == "on foot 🚶"


def test_duplicates_within_a_batch_and_across_batches_are_stored_once(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    first = post(client, member.headers, [ping("a", lat=53.1), ping("b"), ping("a", lat=53.2)])
    assert (first["accepted"], first["duplicates"]) == (2, 1)
    second = post(client, member.headers, [ping("a", lat=53.3), ping("c"), ping("c")])
    assert (second["accepted"], second["duplicates"]) == (1, 2)
    stored = stored_pings(app, member.account_id)
    assert set(stored) == {"a", "b", "c"}
    assert stored["a"].payload.lat == 53.1

    other = consenting_member(app, name="Neighbour")
    third = post(client, other.headers, [ping("a")])
    assert (third["accepted"], third["duplicates"]) == (1, 0), "ids are unique per member, not globally"


def test_without_any_consent_nothing_is_stored(client: TestClient, app: FastAPI) -> None:
    member = make_account(app, Role.MEMBER)
    body = post(client, member.headers, [ping("a"), ping("b"), {"id": "bad"}])
    assert body["dropped"] == {"no_consent": 2, "paused": 0, "privacy_zone": 0}
    assert body["accepted"] == 0
    assert body["rejected"] == [{"index": 2, "id": "bad", "reason": "invalid_ts"}]
    assert count_all_pings(app) == 0


def test_withdrawn_consent_drops_and_one_purpose_given_is_enough(client: TestClient, app: FastAPI) -> None:
    member = make_account(app, Role.MEMBER)
    start = utcnow() - timedelta(minutes=5)
    record_consent(app, member.account_id, purpose="public-health", at=start)
    record_consent(app, member.account_id, purpose="public-health", state="withdrawn",
                   at=start + timedelta(minutes=1))
    assert post(client, member.headers, [ping("a")])["dropped"]["no_consent"] == 1
    record_consent(app, member.account_id, purpose="environment", at=start + timedelta(minutes=2))
    assert post(client, member.headers, [ping("a")])["accepted"] == 1


def test_paused_collection_drops_after_the_consent_check(client: TestClient, app: FastAPI) -> None:
    member = make_account(app, Role.MEMBER)
    set_paused(app, member.account_id, True)
    assert post(client, member.headers, [ping("a")])["dropped"] == {"no_consent": 1, "paused": 0,
                                                                     "privacy_zone": 0}
    record_consent(app, member.account_id)
    assert post(client, member.headers, [ping("a"), ping("b")])["dropped"] == {
        "no_consent": 0, "paused": 2, "privacy_zone": 0}
    assert count_all_pings(app) == 0
    set_paused(app, member.account_id, False)
    assert post(client, member.headers, [ping("a")])["accepted"] == 1


def test_pings_inside_a_privacy_zone_are_dropped(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    add_zone(app, member.account_id, lat=53.40, lng=-2.98, radius_m=200)
    add_zone(app, member.account_id, lat=53.45, lng=-2.90, radius_m=50)
    body = post(client, member.headers, [
        ping("home", lat=53.4009, lng=-2.98),       # about 100 m from the first centre
        ping("edge-out", lat=53.4020, lng=-2.98),   # about 222 m: outside
        ping("work", lat=53.45, lng=-2.9003),       # about 20 m from the second centre
        ping("town", lat=53.41, lng=-2.99),
    ])
    assert body["dropped"] == {"no_consent": 0, "paused": 0, "privacy_zone": 2}
    assert body["accepted"] == 2
    assert set(stored_pings(app, member.account_id)) == {"edge-out", "town"}
    # Zones belong to their member only.
    other = consenting_member(app, name="Other")
    assert post(client, other.headers, [ping("home", lat=53.4009, lng=-2.98)])["accepted"] == 1


def test_pause_is_checked_before_privacy_zones(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    add_zone(app, member.account_id, lat=53.40, lng=-2.98, radius_m=500)
    set_paused(app, member.account_id, True)
    assert post(client, member.headers, [ping("home", lat=53.40, lng=-2.98)])["dropped"]["paused"] == 1


def test_nothing_of_a_failed_request_is_stored(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    member = consenting_member(app)
    real_insert = repository.insert_pings

    def insert_then_fail(session: Any, rows: Any) -> int:
        inserted = real_insert(session, rows)
        assert inserted == 3
        raise RuntimeError("simulated crash after the insert")

    monkeypatch.setattr(repository, "insert_pings", insert_then_fail)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/pings", json={"pings": [ping("a"), ping("b"), ping("c")]},
                               headers=member.headers)
        assert response.status_code == 500
    assert count_all_pings(app) == 0


def test_coordinates_are_not_readable_in_the_database(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    lat, lng = 53.4083812, -2.9916421
    post(client, member.headers, [ping("secret", lat=lat, lng=lng, accuracy_m=7.25, activity="cycling")])
    with session_scope(app.state.engine) as session:
        row = session.connection().execute(Ping.__table__.select()).one()  # type: ignore[attr-defined]
    raw = b"|".join(value if isinstance(value, bytes) else str(value).encode() for value in row)
    for needle in (struct.pack("<d", lat), struct.pack("<d", lng), struct.pack(">d", lat),
                   struct.pack("<f", lat), b"53.408", b"2.9916", b"cycling", struct.pack("<d", 7.25)):
        assert needle not in raw
    assert stored_pings(app, member.account_id)["secret"].payload.lat == lat


def test_a_blob_moved_to_another_row_does_not_decrypt(client: TestClient, app: FastAPI) -> None:
    from coop.ingest.codec import open_ping
    from coop.kit.crypto import DecryptionError
    from tests.support.ingest import member_secrets

    member = consenting_member(app)
    post(client, member.headers, [ping("a"), ping("b")])
    stored = stored_pings(app, member.account_id)
    member_no, data_key = member_secrets(app, member.account_id)
    with pytest.raises(DecryptionError):
        open_ping(data_key, stored["a"].blob, member_no=member_no, client_id="b")
    with pytest.raises(DecryptionError):
        open_ping(data_key, stored["a"].blob, member_no=member_no + 1, client_id="a")
