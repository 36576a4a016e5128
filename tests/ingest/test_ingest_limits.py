"""Body shapes, size and rate limits of ingest, and inputs that must never produce a 5xx."""

from __future__ import annotations

import json
import threading
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from api.app import create_app
from coop.kit.settings import Settings
from tests.support.ingest import consenting_member, count_all_pings, ping, stored_pings

JSON_HEADERS = {"Content-Type": "application/json"}


def post_raw(client: TestClient, headers: dict[str, str], raw: str | bytes, path: str = "/v1/pings") -> int:
    response = client.post(path, content=raw, headers={**headers, **JSON_HEADERS})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
    status: int = response.status_code
    return status


def test_bodies_that_are_not_a_batch_are_422(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    good = ping("a")
    bodies: list[Any] = [[], {}, {"pings": []}, {"pings": {}}, {"pings": "a"}, {"pings": None}, {"ping": [good]},
                         {"pings": [good], "extra": 1}, "pings", 3, None, {"pings": [good] * 1001}]
    for body in bodies:
        assert post_raw(client, member.headers, json.dumps(body)) == 422, body
    for raw in (b"", b"{", b"{'pings': []}", b'{"pings": [1,]}', b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000,
                b'{"pings": [{"id": "a", "lat": 1' + b"0" * 5000 + b"}]}"):
        assert post_raw(client, member.headers, raw) == 422, raw[:40]
    assert count_all_pings(app) == 0


def test_a_full_batch_of_1000_is_accepted(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    response = client.post("/v1/pings", json={"pings": [ping(f"p{n}", lat=53 + n / 10_000)
                                                         for n in range(1000)]}, headers=member.headers)
    assert response.status_code == 200
    assert response.json()["accepted"] == 1000


def test_body_over_1_mib_is_413_and_non_json_is_415(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    padded = {"pings": [ping("a", activity="x" * 60) | {"padding": "y" * 2000} for _ in range(600)]}
    raw = json.dumps(padded)
    assert len(raw) > 1024 * 1024
    assert post_raw(client, member.headers, raw) == 413
    response = client.post("/v1/pings", content=b"pings=1", headers={**member.headers,
                                                                     "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert count_all_pings(app) == 0


def test_ingest_is_rate_limited_per_token(settings: Settings) -> None:
    limited_app = create_app(settings.model_copy(update={"ingest_rate_per_minute": 2}))
    member = consenting_member(limited_app)
    with TestClient(limited_app) as client:
        for n in range(2):
            assert client.post("/v1/pings", json={"pings": [ping(f"p{n}")]}, headers=member.headers).status_code == 200
        response = client.post("/v1/ingest/owntracks", json={"_type": "lwt"}, headers=member.headers)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        other = consenting_member(limited_app, name="Other")
        assert client.post("/v1/pings", json={"pings": [ping("x")]}, headers=other.headers).status_code == 200


def test_concurrent_duplicate_batches_never_fail_and_store_once(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    batch = {"pings": [ping(f"p{n}", lat=53 + n / 1000) for n in range(50)]}
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def send() -> None:
        response = client.post("/v1/pings", json=batch, headers=member.headers)
        with lock:
            results.append((response.status_code, response.json()))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [200] * 6
    assert sum(body["accepted"] for _, body in results) == 50
    assert sum(body["duplicates"] for _, body in results) == 250
    assert len(stored_pings(app, member.account_id)) == 50


json_scalars = st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) \
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=80)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=5)
                           | st.dictionaries(st.text(max_size=10), children, max_size=5), max_leaves=25)
ping_keys = st.sampled_from(["id", "ts", "lat", "lng", "accuracy_m", "speed_mps", "altitude_m", "heading_deg",
                             "battery", "activity"])
ping_like = st.dictionaries(ping_keys, json_values, max_size=10) | json_values


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pings=st.lists(ping_like, max_size=6), top=json_values)
def test_malformed_input_never_gives_a_5xx(client: TestClient, app: FastAPI, pings: list[Any], top: Any) -> None:
    member = consenting_member(app)
    raw_pings = json.dumps({"pings": pings})
    post_raw(client, member.headers, raw_pings)
    post_raw(client, member.headers, json.dumps(top))
    post_raw(client, member.headers, json.dumps({"pings": top}))
    post_raw(client, member.headers, json.dumps(top), path="/v1/ingest/owntracks")
    post_raw(client, member.headers, json.dumps({"_type": "location", **(top if isinstance(top, dict) else {})}),
             path="/v1/ingest/owntracks")
    post_raw(client, member.headers, json.dumps({"locations": pings}), path="/v1/ingest/overland")
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": p},
                 "properties": top} for p in pings]
    post_raw(client, member.headers, json.dumps({"locations": features}), path="/v1/ingest/overland")
