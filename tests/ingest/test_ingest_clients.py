"""OwnTracks and Overland: real payloads replayed twice are stored once, in native units."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from coop.kit.timeutil import utcnow
from tests.support.factories import Caller, make_account
from tests.support.ingest import consenting_member, count_all_pings, stored_pings

# The clients' sample messages ship with the tests (tests/fixtures/clients, with their provenance).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def basic(token: str, user: str = "phone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def recent_owntracks() -> dict[str, Any]:
    message: dict[str, Any] = fixture("owntracks-location.json")
    message["tst"] = int(utcnow().timestamp()) - 60
    return message


def recent_overland() -> dict[str, Any]:
    batch: dict[str, Any] = fixture("overland-batch.json")
    base = int(utcnow().timestamp()) - 600
    for offset, feature in enumerate(batch["locations"]):
        moment = datetime.fromtimestamp(base + 30 * offset, tz=UTC)
        feature["properties"]["timestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%S+0000")
    return batch


def test_owntracks_location_replayed_twice_is_stored_once_in_native_units(client: TestClient,
                                                                          app: FastAPI) -> None:
    member = consenting_member(app)
    message = recent_owntracks()
    for _ in range(2):
        response = client.post("/v1/ingest/owntracks", json=message, headers=basic(member.token))
        assert response.status_code == 200, response.text
        assert response.json() == []
    stored = list(stored_pings(app, member.account_id).values())
    assert len(stored) == 1
    point = stored[0]
    assert (point.payload.lat, point.payload.lng) == (53.40838, -2.99164)
    assert point.ts_ms == message["tst"] * 1000
    assert point.payload.speed_mps == pytest.approx(15.0)  # 54 km/h
    assert point.payload.battery == pytest.approx(0.87)  # 87 %
    assert point.payload.accuracy_m == 13
    assert point.payload.altitude_m == 53
    assert point.payload.heading_deg == 38
    assert point.client_id.startswith("ot-")


def test_owntracks_accepts_a_bearer_token_too(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    response = client.post("/v1/ingest/owntracks", json=recent_owntracks(), headers=member.headers)
    assert response.status_code == 200 and response.json() == []
    assert count_all_pings(app) == 1


def test_owntracks_other_message_types_are_accepted_and_ignored(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    for payload in (fixture("owntracks-transition.json"), {"_type": "lwt", "tst": 1}, {"no": "type"}):
        response = client.post("/v1/ingest/owntracks", json=payload, headers=basic(member.token))
        assert response.status_code == 200 and response.json() == []
    assert count_all_pings(app) == 0


def test_owntracks_bad_or_unconsented_locations_answer_200_and_store_nothing(client: TestClient,
                                                                              app: FastAPI) -> None:
    member = consenting_member(app)
    bad = recent_owntracks() | {"lat": "north", "batt": "full"}
    response = client.post("/v1/ingest/owntracks", json=bad, headers=basic(member.token))
    assert response.status_code == 200 and response.json() == []
    unconsented = make_account(app, Role.MEMBER)
    response = client.post("/v1/ingest/owntracks", json=recent_owntracks(), headers=basic(unconsented.token))
    assert response.status_code == 200 and response.json() == []
    assert count_all_pings(app) == 0


def test_owntracks_body_that_is_not_a_message_is_422(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    for raw in ('"location"', "42", "null", "{"):
        response = client.post("/v1/ingest/owntracks", content=raw,
                               headers={**basic(member.token), "Content-Type": "application/json"})
        assert response.status_code == 422, raw


def test_overland_batch_replayed_twice_is_stored_once_with_units(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    batch = recent_overland()
    first = client.post("/v1/ingest/overland", params={"access_token": member.token}, json=batch)
    assert first.status_code == 200, first.text
    assert first.json() == {"result": "ok", "accepted": 2, "duplicates": 0,
                            "dropped": {"no_consent": 0, "paused": 0, "privacy_zone": 0}, "rejected": []}
    second = client.post("/v1/ingest/overland", json=batch, headers=member.headers)
    assert second.status_code == 200
    assert (second.json()["accepted"], second.json()["duplicates"]) == (0, 2)

    stored = sorted(stored_pings(app, member.account_id).values(), key=lambda p: p.ts_ms)
    assert len(stored) == 2
    driving, walking = stored[0].payload, stored[1].payload
    assert (driving.lat, driving.lng) == (53.40472, -2.97794)  # GeoJSON is [lon, lat]
    assert (walking.lat, walking.lng) == (53.40612, -2.98101)
    assert (driving.accuracy_m, driving.speed_mps, driving.altitude_m, driving.battery) == (30, 4, 12, 0.89)
    assert walking.accuracy_m is None  # -1 means unknown
    assert (walking.speed_mps, walking.battery, walking.activity) == (3.5, 0.88, "walking")
    assert driving.activity == "driving"
    assert stored[1].ts_ms - stored[0].ts_ms == 30_000


def test_overland_rejected_points_still_answer_ok_and_the_rest_is_stored(client: TestClient,
                                                                        app: FastAPI) -> None:
    member = consenting_member(app)
    batch = recent_overland()
    batch["locations"][0]["geometry"]["coordinates"] = [-2.9, 95.0]
    batch["locations"].append("garbage")
    batch["locations"].append({"type": "Feature", "geometry": None, "properties": []})
    response = client.post("/v1/ingest/overland", json=batch, headers=member.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == "ok" and body["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (0, "lat_out_of_range"), (2, "not_an_object"), (3, "invalid_ts")]
    assert count_all_pings(app) == 1


def test_overland_empty_batch_is_ok_and_bad_shapes_are_422(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    response = client.post("/v1/ingest/overland", json={"locations": []}, headers=member.headers)
    assert response.status_code == 200 and response.json()["accepted"] == 0
    bodies: list[Any] = [{}, {"locations": {}}, [], {"locations": "x"}]
    for body in bodies:
        assert client.post("/v1/ingest/overland", json=body, headers=member.headers).status_code == 422
    too_many: dict[str, Any] = {"locations": [{}] * 1001}
    assert client.post("/v1/ingest/overland", json=too_many, headers=member.headers).status_code == 422


@pytest.mark.parametrize("path", ["/v1/pings", "/v1/ingest/owntracks", "/v1/ingest/overland"])
def test_anonymous_is_401_and_non_member_is_403(client: TestClient, app: FastAPI, path: str) -> None:
    body = {"pings": [{"id": "a"}]}
    assert client.post(path, json=body).status_code == 401
    assert client.post(path, json=body, headers={"Authorization": "Bearer coop_nope"}).status_code == 401
    modeller: Caller = make_account(app, Role.MODELLER, Role.BOARD)
    response = client.post(path, json=body, headers=modeller.headers)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


def test_owntracks_basic_and_overland_query_tokens_are_checked(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    modeller = make_account(app, Role.MODELLER)
    message = recent_owntracks()
    assert client.post("/v1/ingest/owntracks", json=message, headers=basic("wrong")).status_code == 401
    assert client.post("/v1/ingest/owntracks", json=message,
                       headers={"Authorization": "Basic !!notbase64"}).status_code == 401
    assert client.post("/v1/ingest/owntracks", json=message, headers=basic(modeller.token)).status_code == 403
    batch = recent_overland()
    assert client.post("/v1/ingest/overland", params={"access_token": "wrong"}, json=batch).status_code == 401
    assert client.post("/v1/ingest/overland", params={"access_token": modeller.token},
                       json=batch).status_code == 403
    assert client.post("/v1/ingest/overland", params={"access_token": member.token},
                       json=batch).status_code == 200


def test_openapi_documents_the_three_ingest_bodies(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    native = paths["/v1/pings"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(native["properties"]["pings"]["items"]["properties"]) >= {"id", "ts", "lat", "lng", "battery"}
    overland = paths["/v1/ingest/overland"]["post"]
    assert "locations" in overland["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert any(p["name"] == "access_token" for p in overland["parameters"])
    owntracks = paths["/v1/ingest/owntracks"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "_type" in owntracks["properties"]
    assert "$ref" not in str(native)  # nested models are inlined, so every reference resolves
