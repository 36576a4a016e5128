"""Helpers for the rights tests: members who consent through the API, pings sent through the API, money.

Pings go through ``POST /v1/pings`` (the round trip under test starts there); consent is given through
``PUT /v1/me/consents/{purpose}`` so the export's receipts are real signed ones.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from tests.support.factories import Caller, make_account
from tests.support.ledger import make_licence, make_release, noon, pay_licence

OPTIONAL = ("accuracy_m", "speed_mps", "altitude_m", "heading_deg", "battery", "activity")


def give_consent(client: TestClient, caller: Caller, purpose: str = "transport-planning") -> dict[str, Any]:
    purposes = {p["code"]: p for p in client.get("/v1/purposes").json()["items"]}
    response = client.put(f"/v1/me/consents/{purpose}", headers=caller.headers,
                          json={"given": True, "policy_version": purposes[purpose]["policy_version"]})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def consenting_member(app: FastAPI, client: TestClient, *, name: str = "Resident") -> Caller:
    member = make_account(app, Role.MEMBER, name=name)
    give_consent(client, member)
    return member


@cache
def base_time() -> datetime:
    """Three days before the test run started, on a whole second (inside the ingest retention window).

    One value for the whole run: tests call it more than once (to make pings, then to query them), and
    a second boundary crossed between two calls would shift the query by a second (a flaky test)."""
    return (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)


def rfc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def send_pings(client: TestClient, caller: Caller, pings: list[dict[str, Any]]) -> None:
    for start in range(0, len(pings), 1000):
        response = client.post("/v1/pings", json={"pings": pings[start:start + 1000]}, headers=caller.headers)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(pings[start:start + 1000]), response.text


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def parse_csv(text: str) -> list[dict[str, Any]]:
    """Rows of a pings CSV with empty cells as None and numbers as floats."""
    rows = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            if value == "":
                parsed[key] = None
            elif key in ("id", "ts", "activity"):
                parsed[key] = value
            else:
                parsed[key] = float(value)
        rows.append(parsed)
    return rows


def geojson_as_pings(text: str) -> list[dict[str, Any]]:
    document = json.loads(text)
    assert document["type"] == "FeatureCollection"
    pings = []
    for feature in document["features"]:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
        lng, lat = feature["geometry"]["coordinates"]
        pings.append({**feature["properties"], "lat": lat, "lng": lng})
    return pings


def assert_same_pings(sent: list[dict[str, Any]], returned: list[dict[str, Any]]) -> None:
    """Same ids in the same order, same instants, coordinates and fields to 6 decimal places."""
    assert [p["id"] for p in returned] == [p["id"] for p in sent]
    for original, got in zip(sent, returned, strict=True):
        assert set(got) == {"id", "ts", "lat", "lng", *OPTIONAL}
        assert got["ts"].endswith("Z")
        sent_ts = original["ts"]
        expected = instant(sent_ts) if isinstance(sent_ts, str) else datetime.fromtimestamp(sent_ts, UTC)
        assert instant(got["ts"]) == expected
        for key in ("lat", "lng", "accuracy_m", "speed_mps", "altitude_m", "heading_deg", "battery"):
            if original.get(key) is None:
                assert got[key] is None, key
            else:
                assert round(got[key], 6) == round(original[key], 6), key
        assert got["activity"] == original.get("activity")


def all_json_pings(client: TestClient, caller: Caller, **params: Any) -> list[dict[str, Any]]:
    """Every page of ``GET /v1/me/pings`` (JSON), following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/me/pings", params=query, headers=caller.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def earn_dividend(app: FastAPI, client: TestClient, member: Caller, *, units: int = 3) -> str:
    """A paid licence, a ready release counting ``member`` and a declared dividend; the dividend id."""
    treasurer = make_account(app, Role.TREASURER, name="Treasurer")
    licensee = make_account(app, Role.MODELLER, name="Modeller", organisation="Transport Lab")
    licence_id = make_licence(app, fee_pence=10_000, licensee=licensee)
    start = datetime.now(UTC).date() - timedelta(days=40)
    pay_licence(app, licence_id=licence_id, amount_pence=10_000, received_at=noon(start + timedelta(days=1)),
                recorded_by=treasurer.account_id)
    make_release(app, licence_id=licence_id, requested_by=licensee.account_id,
                 built_at=noon(start + timedelta(days=2)), units={member.account_id: units})
    end: date = start + timedelta(days=30)
    response = client.post("/v1/dividends", headers={**treasurer.headers, "Idempotency-Key": "d1"},
                           json={"period_start": start.isoformat(), "period_end": end.isoformat(),
                                 "reserve_bps": 0})
    assert response.status_code == 201, response.text
    dividend_id: str = response.json()["dividend_id"]
    return dividend_id
