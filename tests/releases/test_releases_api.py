"""The releases API over sealed tables written by factories: who may do what, the period, sealing and
licence rules, the files, the manifest (signed, no exact counts), the downloads log, usage, idempotency,
crash recovery and concurrent requests."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from datetime import date, timedelta
from typing import Any

import h3
import jwt
import polars as pl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from coop.accounts.roles import Role
from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.licensing.models import Licence
from coop.releases.models import Release
from tests.support.factories import Caller, make_account
from tests.support.release_checks import built_release, release_rows, request_release
from tests.support.releases import at, cell10, make_licence, make_member
from tests.support.sealed import make_family, seal_bucket, seal_period

MONDAY = date(2026, 11, 2)
WEEK_END = MONDAY + timedelta(days=7)
LICENCE_END = MONDAY + timedelta(days=28)
X9 = h3.cell_to_parent(cell10(), 9)
FILES = ["cells.csv", "cells.geojson", "cells.parquet", "preview.svg", "datapackage.json"]
MANIFEST_KEYS = {"release_id", "licence_id", "family_id", "purpose", "dataset", "k", "start", "end", "status",
                 "progress", "built_at", "stats", "privacy", "files", "error", "jws"}
PRIVACY_KEYS = {"mechanism", "privacy_unit", "epsilon_per_day", "delta", "tau", "contribution_bound"}


@pytest.fixture
def modeller(app: FastAPI) -> Caller:
    return make_account(app, Role.MODELLER, name="Modeller", organisation="Merseytravel Analytics")


@pytest.fixture
def board(app: FastAPI) -> Caller:
    return make_account(app, Role.BOARD, name="Board member")


@pytest.fixture
def family_id(app: FastAPI) -> str:
    return make_family(app, time_bucket="hour", resolution=9, tau=2)


@pytest.fixture
def residents(app: FastAPI) -> list[Caller]:
    return [make_member(app, name=f"Resident {n}").caller for n in range(3)]


@pytest.fixture
def licence_id(app: FastAPI, modeller: Caller, family_id: str, residents: list[Caller]) -> str:
    """An hourly licence on four sealed weeks: X9 has the three residents at 09:00 on the first two days."""
    published = {at(MONDAY, 9), at(MONDAY + timedelta(days=1), 9)}
    seal_period(app, family_id, start=MONDAY, end=LICENCE_END, skip=published)
    for moment in sorted(published):
        seal_bucket(app, family_id, start=moment, cells=[(X9, 3)], inputs=[r.account_id for r in residents])
    return make_licence(app, modeller, start=MONDAY, end=LICENCE_END, k=2, family_id=family_id)


@pytest.fixture
def ready(client: TestClient, app: FastAPI, modeller: Caller, licence_id: str) -> dict[str, Any]:
    return built_release(client, app, modeller, licence_id, start=MONDAY, end=WEEK_END)


def test_the_manifest_is_signed_and_its_hashes_match_the_downloads(
        client: TestClient, modeller: Caller, ready: dict[str, Any]) -> None:
    jwks = client.get("/v1/coop").json()["jwks"]["keys"]
    header = jwt.get_unverified_header(ready["jws"])
    key = next(jwt.PyJWK(jwk) for jwk in jwks if jwk["kid"] == header["kid"])
    payload = jwt.decode(ready["jws"], key=key.key, algorithms=["EdDSA"])
    assert payload == {name: value for name, value in ready.items() if name != "jws"}
    assert ready["progress"] == 1 and ready["built_at"].endswith("Z")
    assert ready["start"] == "2026-11-02" and ready["end"] == "2026-11-09"
    assert ready["dataset"]["resolution"] == 9 and ready["k"] == 2 and ready["purpose"] == "transport-planning"
    assert [f["name"] for f in ready["files"]] == FILES
    for entry in ready["files"]:
        path = "preview.svg" if entry["name"] == "preview.svg" else f"files/{entry['name']}"
        body = client.get(f"/v1/releases/{ready['release_id']}/{path}", headers=modeller.headers)
        assert body.status_code == 200
        assert body.headers["content-type"].startswith(entry["media_type"])
        assert len(body.content) == entry["bytes"]
        assert hashlib.sha256(body.content).hexdigest() == entry["sha256"]


def test_the_geojson_has_one_closed_lng_lat_polygon_per_csv_row(
        client: TestClient, modeller: Caller, ready: dict[str, Any]) -> None:
    rows = release_rows(client, modeller, ready["release_id"])
    assert rows == [("2026-11-02T09:00:00Z", X9, 9, 3), ("2026-11-03T09:00:00Z", X9, 9, 3)]
    collection = client.get(f"/v1/releases/{ready['release_id']}/files/cells.geojson",
                            headers=modeller.headers).json()
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert [(f["properties"]["bucket_start"], f["properties"]["cell"], f["properties"]["resolution"],
             f["properties"]["members"]) for f in features] == rows
    ring = features[0]["geometry"]["coordinates"][0]
    assert features[0]["geometry"]["type"] == "Polygon"
    assert ring[0] == ring[-1] and len(ring) == 7
    lat, lng = h3.cell_to_latlng(X9)
    assert abs(sum(p[0] for p in ring[:-1]) / 6 - lng) < 0.001  # [lng, lat], not [lat, lng]
    assert abs(sum(p[1] for p in ring[:-1]) / 6 - lat) < 0.001


def test_every_download_is_logged_for_the_board(client: TestClient, modeller: Caller, board: Caller,
                                                 ready: dict[str, Any]) -> None:
    release_id = ready["release_id"]
    for name in ("cells.csv", "cells.geojson", "cells.csv"):
        assert client.get(f"/v1/releases/{release_id}/files/{name}", headers=modeller.headers).status_code == 200
    assert client.get(f"/v1/releases/{release_id}/files/cells.csv", headers=board.headers).status_code == 200
    page = client.get(f"/v1/releases/{release_id}/downloads", params={"limit": 3}, headers=board.headers).json()
    assert [d["file_name"] for d in page["items"]] == ["cells.csv", "cells.geojson", "cells.csv"]
    assert {d["account_id"] for d in page["items"]} == {modeller.account_id}
    rest = client.get(f"/v1/releases/{release_id}/downloads", params={"cursor": page["next_cursor"]},
                      headers=board.headers).json()
    assert [d["account_id"] for d in rest["items"]] == [board.account_id] and rest["next_cursor"] is None
    assert client.get(f"/v1/releases/{release_id}/downloads", headers=modeller.headers).status_code == 403
    assert client.get(f"/v1/releases/{uuid.uuid4()}/downloads", headers=board.headers).status_code == 404


def test_the_manifest_holds_the_family_and_its_privacy_parameters_and_no_exact_count(
        ready: dict[str, Any], family_id: str) -> None:
    assert set(ready) == MANIFEST_KEYS
    assert ready["family_id"] == family_id
    assert ready["stats"] == {"rows": 2}
    assert set(ready["privacy"]) == PRIVACY_KEYS
    assert ready["privacy"]["privacy_unit"] == "member-day" and ready["privacy"]["tau"] == 2
    assert ready["privacy"]["contribution_bound"] == 1 and ready["privacy"]["epsilon_per_day"] == 0.5
    text = json.dumps(ready)
    for leak in ("suppressed", "pings_considered", "contributions", "eligible", "generalised"):
        assert leak not in text


def test_the_datapackage_describes_every_other_file(
        client: TestClient, modeller: Caller, ready: dict[str, Any]) -> None:
    package = client.get(f"/v1/releases/{ready['release_id']}/files/datapackage.json",
                         headers=modeller.headers).json()
    listed = {f["name"]: f for f in ready["files"] if f["name"] != "datapackage.json"}
    assert [r["path"] for r in package["resources"]] == list(listed)
    for item in package["resources"]:
        assert item["bytes"] == listed[item["path"]]["bytes"]
        assert item["hash"] == "sha256:" + listed[item["path"]]["sha256"]
        assert item["mediatype"] == listed[item["path"]]["media_type"]
    assert package["privacy"] == ready["privacy"]
    assert package["licence"]["licence_id"] == ready["licence_id"]
    assert package["licence"]["licensee_organisation"] == "Merseytravel Analytics"
    assert package["release"]["family_id"] == ready["family_id"]


def test_the_parquet_file_holds_the_csv_rows(client: TestClient, modeller: Caller, ready: dict[str, Any]) -> None:
    body = client.get(f"/v1/releases/{ready['release_id']}/files/cells.parquet", headers=modeller.headers)
    assert body.status_code == 200 and body.headers["content-type"].startswith("application/vnd.apache.parquet")
    table = pl.read_parquet(io.BytesIO(body.content))
    rows = [(moment.strftime("%Y-%m-%dT%H:%M:%SZ"), cell, resolution, members)
            for moment, cell, resolution, members in table.iter_rows()]
    assert rows == release_rows(client, modeller, ready["release_id"])


def test_unknown_file_names_are_404(client: TestClient, modeller: Caller, ready: dict[str, Any]) -> None:
    for name in ("manifest.json", "..%2Fsigning.key", "preview.svg", "od.csv"):
        response = client.get(f"/v1/releases/{ready['release_id']}/files/{name}", headers=modeller.headers)
        assert response.status_code == 404, name


def test_the_preview_is_an_svg_map(client: TestClient, modeller: Caller, ready: dict[str, Any]) -> None:
    response = client.get(f"/v1/releases/{ready['release_id']}/preview.svg", headers=modeller.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.startswith("<svg") and "Transport planning" in response.text
    assert response.text.count("<path d=") == 1 + 1  # one hexagon and the north arrow


def test_a_period_not_yet_sealed_is_409_with_sealed_through(
        client: TestClient, app: FastAPI, modeller: Caller) -> None:
    family = make_family(app, time_bucket="day", resolution=9)
    licence = make_licence(app, modeller, start=MONDAY, end=LICENCE_END, time_bucket="day", family_id=family)
    nothing = request_release(client, modeller, licence, start=MONDAY, end=WEEK_END)
    assert nothing.status_code == 409, nothing.text
    problem = nothing.json()
    assert problem["type"] == "urn:coop:problem:period-not-sealed" and problem["sealed_through"] is None
    assert nothing.headers["content-type"].startswith("application/problem+json")
    seal_period(app, family, start=MONDAY, end=MONDAY + timedelta(days=5), time_bucket="day")
    partly = request_release(client, modeller, licence, start=MONDAY, end=WEEK_END)
    assert partly.status_code == 409
    assert partly.json()["sealed_through"] == "2026-11-07T00:00:00Z"
    assert "sealed through 2026-11-07T00:00:00Z" in partly.json()["detail"]
    assert request_release(client, modeller, licence, start=MONDAY,
                           end=MONDAY + timedelta(days=5)).status_code == 202
    app.state.release_worker.wait_for_builds()


def test_a_gap_in_the_sealed_buckets_is_409(client: TestClient, app: FastAPI, modeller: Caller) -> None:
    family = make_family(app, time_bucket="hour", resolution=9)
    seal_period(app, family, start=MONDAY, end=WEEK_END, skip=[at(MONDAY + timedelta(days=2), 13)])
    licence = make_licence(app, modeller, start=MONDAY, end=LICENCE_END, family_id=family)
    response = request_release(client, modeller, licence, start=MONDAY, end=WEEK_END)
    assert response.status_code == 409
    assert response.json()["sealed_through"] == "2026-11-04T13:00:00Z"  # the end of the unbroken run
    assert request_release(client, modeller, licence, start=MONDAY,
                           end=MONDAY + timedelta(days=2)).status_code == 202
    app.state.release_worker.wait_for_builds()


def test_a_licence_without_a_family_cannot_build(client: TestClient, app: FastAPI, modeller: Caller) -> None:
    licence = make_licence(app, modeller, start=MONDAY, end=WEEK_END)
    response = request_release(client, modeller, licence, start=MONDAY, end=WEEK_END)
    assert response.status_code == 409 and "no table family" in response.json()["detail"]


def test_overlapping_releases_are_409_and_a_failed_one_does_not_block(
        client: TestClient, app: FastAPI, modeller: Caller, licence_id: str, ready: dict[str, Any]) -> None:
    overlapping = request_release(client, modeller, licence_id, start=MONDAY + timedelta(days=6),
                                  end=MONDAY + timedelta(days=8))
    assert overlapping.status_code == 409 and "overlaps" in overlapping.json()["detail"]
    adjacent = request_release(client, modeller, licence_id, start=WEEK_END, end=WEEK_END + timedelta(days=1))
    assert adjacent.status_code == 202
    app.state.release_worker.wait_for_builds()
    with session_scope(app.state.engine) as session:
        release = session.get(Release, adjacent.json()["release_id"])
        assert release is not None and release.status == "ready"
        release.status = "failed"
        session.add(release)
    again = request_release(client, modeller, licence_id, start=WEEK_END, end=WEEK_END + timedelta(days=1))
    assert again.status_code == 202


@pytest.mark.parametrize(("start", "end", "bucket", "reason"), [
    (MONDAY + timedelta(days=1), MONDAY + timedelta(days=8), "week", "Monday"),
    (MONDAY, MONDAY + timedelta(days=9), "week", "Monday"),
    (MONDAY - timedelta(days=7), MONDAY, "week", "inside"),
    (MONDAY, MONDAY + timedelta(days=35), "day", "inside"),
    (MONDAY + timedelta(days=2), MONDAY + timedelta(days=2), "hour", "after start"),
    (MONDAY + timedelta(days=3), MONDAY + timedelta(days=2), "day", "after start"),
])
def test_the_period_must_be_whole_buckets_inside_the_licence(
        client: TestClient, app: FastAPI, modeller: Caller, start: date, end: date, bucket: str,
        reason: str) -> None:
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=28), time_bucket=bucket)
    response = request_release(client, modeller, licence, start=start, end=end)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]


def test_malformed_bodies_are_422(client: TestClient, modeller: Caller, licence_id: str) -> None:
    url = f"/v1/licences/{licence_id}/releases"
    for body in ({}, {"start": "2026-11-02"}, {"start": "yesterday", "end": "2026-11-09"},
                 {"start": "2026-11-02", "end": "2026-11-09", "k": 1}, [1, 2]):
        assert client.post(url, json=body, headers=modeller.headers).status_code == 422, body


def test_a_revoked_licence_can_neither_build_nor_download(
        client: TestClient, app: FastAPI, modeller: Caller, board: Caller, licence_id: str,
        ready: dict[str, Any]) -> None:
    with session_scope(app.state.engine) as session:
        licence = session.get(Licence, licence_id)
        assert licence is not None
        licence.revoked_at, licence.revoke_reason = utcnow(), "breach"
        session.add(licence)
    refused = request_release(client, modeller, licence_id, start=WEEK_END, end=WEEK_END + timedelta(days=7))
    assert refused.status_code == 409 and "revoked" in refused.json()["detail"]
    release_id = ready["release_id"]
    for path in ("files/cells.csv", "files/cells.geojson", "files/cells.parquet", "files/datapackage.json",
                 "preview.svg"):
        response = client.get(f"/v1/releases/{release_id}/{path}", headers=modeller.headers)
        assert response.status_code == 403 and "revoked" in response.json()["detail"]
    assert client.get(f"/v1/releases/{release_id}/files/cells.csv", headers=board.headers).status_code == 200


def test_an_expired_licence_cannot_build(client: TestClient, app: FastAPI, modeller: Caller) -> None:
    licence = make_licence(app, modeller, start=MONDAY, end=WEEK_END, valid_until=utcnow() - timedelta(days=1))
    response = request_release(client, modeller, licence, start=MONDAY, end=WEEK_END)
    assert response.status_code == 409 and "expired" in response.json()["detail"]


def test_an_unpaid_licence_cannot_build_until_paid(client: TestClient, app: FastAPI, modeller: Caller,
                                                   family_id: str) -> None:
    seal_period(app, family_id, start=MONDAY, end=WEEK_END)
    licence = make_licence(app, modeller, start=MONDAY, end=WEEK_END, fee_pence=50_000, paid_pence=49_999,
                           family_id=family_id)
    response = request_release(client, modeller, licence, start=MONDAY, end=WEEK_END)
    assert response.status_code == 409 and "not paid" in response.json()["detail"]
    with session_scope(app.state.engine) as session:
        row = session.get(Licence, licence)
        assert row is not None
        row.paid_pence = 50_000
        session.add(row)
    assert request_release(client, modeller, licence, start=MONDAY, end=WEEK_END).status_code == 202
    app.state.release_worker.wait_for_builds()


def test_a_licence_revoked_while_queued_fails_the_build(
        client: TestClient, app: FastAPI, modeller: Caller, licence_id: str) -> None:
    worker = app.state.release_worker
    gate = threading.Event()
    worker._executor.submit(gate.wait)  # hold the worker so the release stays queued
    response = request_release(client, modeller, licence_id, start=MONDAY, end=WEEK_END)
    assert response.status_code == 202
    with session_scope(app.state.engine) as session:
        licence = session.get(Licence, licence_id)
        assert licence is not None
        licence.revoked_at = utcnow()
        session.add(licence)
    gate.set()
    worker.wait_for_builds()
    manifest = client.get(f"/v1/releases/{response.json()['release_id']}", headers=modeller.headers).json()
    assert manifest["status"] == "failed" and "revoked" in manifest["error"] and manifest["jws"] is None


def test_the_board_may_build_under_any_licence(client: TestClient, app: FastAPI, board: Caller,
                                               modeller: Caller, licence_id: str) -> None:
    manifest = built_release(client, app, board, licence_id, start=MONDAY, end=WEEK_END)
    assert client.get(f"/v1/releases/{manifest['release_id']}", headers=modeller.headers).status_code == 200


def test_idempotency_key_replays_and_rejects_another_body(
        client: TestClient, modeller: Caller, licence_id: str) -> None:
    key = {"Idempotency-Key": "release-week-45"}
    first = request_release(client, modeller, licence_id, start=MONDAY, end=WEEK_END, headers=key)
    replay = request_release(client, modeller, licence_id, start=MONDAY, end=WEEK_END, headers=key)
    assert first.status_code == replay.status_code == 202
    assert first.json() == replay.json()
    other = request_release(client, modeller, licence_id, start=WEEK_END, end=WEEK_END + timedelta(days=7),
                            headers=key)
    assert other.status_code == 409


def test_concurrent_requests_for_one_period_create_one_release(
        client: TestClient, app: FastAPI, modeller: Caller, licence_id: str) -> None:
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        statuses.append(request_release(client, modeller, licence_id, start=MONDAY, end=WEEK_END).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202, 409, 409, 409]
    app.state.release_worker.wait_for_builds()


def test_builds_left_building_by_a_crash_fail_on_start_and_queued_ones_build(
        app: FastAPI, settings: Settings, modeller: Caller, licence_id: str) -> None:
    ids = {"building": str(uuid.uuid4()), "queued": str(uuid.uuid4())}
    with session_scope(app.state.engine) as session:
        for offset, (status, release_id) in enumerate(ids.items()):
            session.add(Release(id=release_id, licence_id=licence_id, requested_by=modeller.account_id,
                                start=MONDAY + timedelta(days=7 * offset),
                                end=MONDAY + timedelta(days=7 * offset + 7),
                                status=status, progress=0.3 if status == "building" else 0.0,
                                created_at=utcnow()))
    restarted = create_app(settings)
    with TestClient(restarted) as client:
        restarted.state.release_worker.wait_for_builds()
        crashed = client.get(f"/v1/releases/{ids['building']}", headers=modeller.headers).json()
        assert crashed["status"] == "failed" and "interrupted" in crashed["error"]
        resumed = client.get(f"/v1/releases/{ids['queued']}", headers=modeller.headers).json()
        assert resumed["status"] == "ready"
        again = request_release(client, modeller, licence_id, start=MONDAY, end=WEEK_END)
        assert again.status_code == 202  # the failed release does not block its period
        restarted.state.release_worker.wait_for_builds()


def test_usage_lists_the_releases_whose_tables_took_the_members_data(
        client: TestClient, app: FastAPI, modeller: Caller, licence_id: str, residents: list[Caller]) -> None:
    counted = residents
    bystander = make_member(app, name="Not counted")
    first = built_release(client, app, modeller, licence_id, start=MONDAY, end=MONDAY + timedelta(days=1))
    second = built_release(client, app, modeller, licence_id, start=MONDAY + timedelta(days=1),
                           end=MONDAY + timedelta(days=2))
    page = client.get("/v1/me/usage", params={"limit": 1}, headers=counted[0].headers).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = client.get("/v1/me/usage", params={"cursor": page["next_cursor"]}, headers=counted[0].headers).json()
    items = page["items"] + rest["items"]
    assert [item["release_id"] for item in items] == [first["release_id"], second["release_id"]]
    assert items[0] == {"release_id": first["release_id"], "licence_id": licence_id,
                        "organisation": "Merseytravel Analytics", "purpose": "transport-planning",
                        "built_at": items[0]["built_at"], "contribution_units": 1}
    assert items[0]["built_at"].endswith("Z")
    assert client.get("/v1/me/usage", headers=bystander.caller.headers).json() == {"items": [],
                                                                                    "next_cursor": None}


def test_every_endpoint_refuses_anonymous_and_wrong_roles(
        client: TestClient, app: FastAPI, licence_id: str, ready: dict[str, Any]) -> None:
    release_id = ready["release_id"]
    member = make_member(app).caller
    stranger = make_account(app, Role.MODELLER, name="Another modeller")
    treasurer = make_account(app, Role.TREASURER, name="Treasurer")
    body = {"start": "2026-11-16", "end": "2026-11-17"}
    endpoints: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"/v1/licences/{licence_id}/releases", body),
        ("GET", f"/v1/releases/{release_id}", None),
        ("GET", f"/v1/releases/{release_id}/files/cells.csv", None),
        ("GET", f"/v1/releases/{release_id}/files/cells.geojson", None),
        ("GET", f"/v1/releases/{release_id}/files/cells.parquet", None),
        ("GET", f"/v1/releases/{release_id}/files/datapackage.json", None),
        ("GET", f"/v1/releases/{release_id}/preview.svg", None),
        ("GET", f"/v1/releases/{release_id}/downloads", None),
        ("GET", "/v1/me/usage", None),
    ]
    for method, url, json_body in endpoints:
        assert client.request(method, url, json=json_body).status_code == 401, url
        assert client.request(method, url, json=json_body,
                              headers={"Authorization": "Bearer nope"}).status_code == 401, url
        board_only = url.endswith("/downloads")
        member_only = url.endswith("/usage")
        for caller in (member, treasurer):
            expected = 200 if member_only and caller is member else 403
            assert client.request(method, url, json=json_body, headers=caller.headers).status_code == expected, url
        if not member_only:
            expected = 403 if board_only else 404
            assert client.request(method, url, json=json_body,
                                  headers=stranger.headers).status_code == expected, url
    assert json.loads(client.get(f"/v1/releases/{uuid.uuid4()}", headers=stranger.headers).text)["status"] == 404
