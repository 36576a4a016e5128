"""``GET /v1/me/pings``: round trip in JSON, GeoJSON and CSV, time filtering, pagination, isolation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.kit.crypto import b64url
from tests.support.rights import (
    all_json_pings,
    assert_same_pings,
    base_time,
    consenting_member,
    geojson_as_pings,
    parse_csv,
    rfc,
    send_pings,
)


def varied_pings(prefix: str = "p", *, lat0: float = 53.4083812345678, lng0: float = -2.9916412345678) -> list[dict[str, Any]]:
    """Pings with every mix of optional fields, awkward ids and activities, sent in shuffled time order."""
    base = base_time()
    pings: list[dict[str, Any]] = [
        {"id": f"{prefix}-bare", "ts": rfc(base), "lat": lat0, "lng": lng0},
        {"id": f"{prefix}-full", "ts": rfc(base + timedelta(seconds=1, milliseconds=250)), "lat": lat0 + 0.0012345,
         "lng": lng0 - 0.0098765, "accuracy_m": 4.5, "speed_mps": 1.25, "altitude_m": -3.75, "heading_deg": 359.9,
         "battery": 0.42, "activity": "walking"},
        {"id": f'{prefix}-"quoted",comma', "ts": (base + timedelta(minutes=3)).timestamp(), "lat": 53.1234567,
         "lng": -3.0000001, "activity": "cycling, fast \u00e9\u00e8 \u2603"},
        {"id": f"{prefix}-offset", "ts": (base + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=1))).isoformat(),
         "lat": 53.5, "lng": -2.5, "battery": 0.0, "heading_deg": 0.0},
        {"id": f"{prefix}-only-speed", "ts": rfc(base + timedelta(minutes=4)), "lat": 53.45, "lng": -2.95,
         "speed_mps": 0.0},
    ]
    pings += [{"id": f"{prefix}-{n:03d}", "ts": rfc(base + timedelta(minutes=10, seconds=n)),
               "lat": lat0 + n * 1e-6, "lng": lng0 - n * 1e-6, "accuracy_m": float(n % 50)} for n in range(25)]
    return pings


def in_time_order(pings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(ping: dict[str, Any]) -> float:
        ts = ping["ts"]
        return datetime.fromisoformat(ts).timestamp() if isinstance(ts, str) else float(ts)

    return sorted(pings, key=key)


def test_what_was_sent_comes_back_in_json_geojson_and_csv(app: FastAPI, client: TestClient) -> None:
    member = consenting_member(app, client)
    sent = varied_pings()
    send_pings(client, member, list(reversed(sent)))
    expected = in_time_order(sent)

    assert_same_pings(expected, all_json_pings(client, member, limit=1000))

    geojson = client.get("/v1/me/pings", params={"format": "geojson"}, headers=member.headers)
    assert geojson.status_code == 200
    assert geojson.headers["content-type"].startswith("application/geo+json")
    assert geojson.headers["content-disposition"].startswith("attachment")
    assert_same_pings(expected, geojson_as_pings(geojson.text))

    as_csv = client.get("/v1/me/pings", params={"format": "csv"}, headers=member.headers)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"].startswith("attachment")
    assert as_csv.text.splitlines()[0] == "id,ts,lat,lng,accuracy_m,speed_mps,altitude_m,heading_deg,battery,activity"
    assert_same_pings(expected, parse_csv(as_csv.text))


def test_coordinates_come_back_as_the_exact_floats_sent(app: FastAPI, client: TestClient) -> None:
    member = consenting_member(app, client)
    sent = varied_pings()
    send_pings(client, member, sent)
    by_id = {p["id"]: p for p in all_json_pings(client, member)}
    csv_by_id = {p["id"]: p for p in parse_csv(client.get("/v1/me/pings", params={"format": "csv"},
                                                           headers=member.headers).text)}
    for ping in sent:
        assert (by_id[ping["id"]]["lat"], by_id[ping["id"]]["lng"]) == (ping["lat"], ping["lng"])
        assert (csv_by_id[ping["id"]]["lat"], csv_by_id[ping["id"]]["lng"]) == (ping["lat"], ping["lng"])


def test_a_member_without_pings_gets_empty_documents(app: FastAPI, client: TestClient) -> None:
    member = consenting_member(app, client)
    assert client.get("/v1/me/pings", headers=member.headers).json() == {"items": [], "next_cursor": None}
    geojson = client.get("/v1/me/pings", params={"format": "geojson"}, headers=member.headers).json()
    assert geojson == {"type": "FeatureCollection", "features": []}
    as_csv = client.get("/v1/me/pings", params={"format": "csv"}, headers=member.headers).text
    assert as_csv == "id,ts,lat,lng,accuracy_m,speed_mps,altitude_m,heading_deg,battery,activity\r\n"


def minute_pings(count: int) -> list[dict[str, Any]]:
    base = base_time()
    return [{"id": f"m{n:02d}", "ts": rfc(base + timedelta(minutes=n)), "lat": 53.4 + n / 1000, "lng": -2.9}
            for n in range(count)]


@pytest.mark.parametrize("fmt", ["json", "geojson", "csv"])
def test_start_is_inclusive_and_end_exclusive_in_every_format(app: FastAPI, client: TestClient, fmt: str) -> None:
    member = consenting_member(app, client)
    sent = minute_pings(20)
    send_pings(client, member, sent)
    base = base_time()
    start = (base + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-5))).isoformat()  # any offset
    end = str(int((base + timedelta(minutes=12)).timestamp()))  # epoch seconds
    response = client.get("/v1/me/pings", params={"start": start, "end": end, "format": fmt, "limit": 1000},
                          headers=member.headers)
    assert response.status_code == 200, response.text
    if fmt == "json":
        returned = response.json()["items"]
    elif fmt == "geojson":
        returned = geojson_as_pings(response.text)
    else:
        returned = parse_csv(response.text)
    assert [p["id"] for p in returned] == [f"m{n:02d}" for n in range(5, 12)]


def test_time_bounds_are_exact_to_the_millisecond(app: FastAPI, client: TestClient) -> None:
    member = consenting_member(app, client)
    base = base_time()
    sent = [{"id": f"ms{n}", "ts": rfc(base + timedelta(milliseconds=n)), "lat": 53.4, "lng": -2.9} for n in range(5)]
    send_pings(client, member, sent)
    start = rfc(base + timedelta(milliseconds=1))
    end = f"{base.timestamp() + 0.003:.3f}"
    ids = [p["id"] for p in all_json_pings(client, member, start=start, end=end)]
    assert ids == ["ms1", "ms2"]
    only_start = [p["id"] for p in all_json_pings(client, member, start=rfc(base + timedelta(microseconds=3500)))]
    assert only_start == ["ms4"]  # 3.5 ms rounds up: the ping at 3 ms is before the start


@pytest.mark.parametrize("params", [
    {"start": "yesterday"}, {"start": "2026-11-21T09:00:00"}, {"start": "2026-11-21"}, {"end": "nan"},
    {"end": "inf"}, {"start": "1e10"}, {"start": "99999999999999"}, {"end": "2026-13-01T00:00:00Z"},
    {"start": "2026-11-21T10:00:00Z", "end": "2026-11-21T09:00:00Z"}, {"start": "x" * 41},
    {"format": "xml"}, {"limit": "0"}, {"limit": "1001"}, {"cursor": "not-a-cursor"},
    {"cursor": b64url(b"[1]")}, {"cursor": b64url(b'["a", 1]')}, {"cursor": b64url(b"[1, 99999999999999999999]")},
    {"cursor": b64url(b"[true, 1]")}, {"start": "\x00"},
])
def test_invalid_parameters_are_422(app: FastAPI, client: TestClient, params: dict[str, str]) -> None:
    member = consenting_member(app, client)
    for fmt in ("json", "csv"):
        response = client.get("/v1/me/pings", params={"format": fmt, **params}, headers=member.headers)
        if "cursor" in params and fmt == "csv":
            continue  # the streamed formats take no cursor
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_pages_have_no_gaps_or_repeats_even_when_times_tie(app: FastAPI, client: TestClient) -> None:
    member = consenting_member(app, client)
    base = base_time()
    sent = [{"id": f"t{n:03d}", "ts": rfc(base + timedelta(seconds=n // 4)), "lat": 53.4, "lng": -2.9 + n / 1e5}
            for n in range(203)]  # four pings share each second
    send_pings(client, member, sent[::-1])
    everything = client.get("/v1/me/pings", params={"limit": 1000}, headers=member.headers).json()["items"]
    assert len(everything) == 203
    for limit in (1, 7, 100, 203):
        pages = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            body = client.get("/v1/me/pings", params=params, headers=member.headers).json()
            assert 0 < len(body["items"]) <= limit
            pages.append(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        walked = [item for page in pages for item in page]
        assert walked == everything
        assert len({p["id"] for p in walked}) == 203
    times = [p["ts"] for p in everything]
    assert times == sorted(times)


def test_pagination_respects_the_time_range(app: FastAPI, client: TestClient) -> None:
    member = consenting_member(app, client)
    send_pings(client, member, minute_pings(30))
    base = base_time()
    ids = [p["id"] for p in all_json_pings(client, member, limit=4, start=rfc(base + timedelta(minutes=3)),
                                           end=rfc(base + timedelta(minutes=17)))]
    assert ids == [f"m{n:02d}" for n in range(3, 17)]


def test_another_members_pings_never_appear(app: FastAPI, client: TestClient) -> None:
    alice, bob = consenting_member(app, client, name="Alice"), consenting_member(app, client, name="Bob")
    alice_pings = varied_pings("same", lat0=53.41, lng0=-2.91)
    bob_pings = varied_pings("same", lat0=53.61, lng0=-2.61)  # the same client ids, elsewhere
    send_pings(client, alice, alice_pings)
    send_pings(client, bob, bob_pings)

    for caller, mine in ((alice, alice_pings), (bob, bob_pings)):
        expected = in_time_order(mine)
        assert_same_pings(expected, all_json_pings(client, caller, limit=3))
        geojson = client.get("/v1/me/pings", params={"format": "geojson"}, headers=caller.headers).text
        assert_same_pings(expected, geojson_as_pings(geojson))
        as_csv = client.get("/v1/me/pings", params={"format": "csv"}, headers=caller.headers).text
        assert_same_pings(expected, parse_csv(as_csv))

    # Bob's cursor is only a position: used by Alice it still returns Alice's pings.
    bob_cursor = client.get("/v1/me/pings", params={"limit": 2}, headers=bob.headers).json()["next_cursor"]
    page = client.get("/v1/me/pings", params={"cursor": bob_cursor, "limit": 1000}, headers=alice.headers).json()
    alice_by_id = {p["id"]: p for p in alice_pings}
    assert page["items"]
    assert all((p["lat"], p["lng"]) == (alice_by_id[p["id"]]["lat"], alice_by_id[p["id"]]["lng"])
               for p in page["items"])
