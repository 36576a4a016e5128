"""Privacy zones: create, list, delete, validation, encryption at rest, ownership; collection pause."""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from consent.models import PrivacyZone
from consent.privacy_zones import MAX_ZONES_PER_MEMBER, delete_member_zones, member_zones
from consent.zones import ZoneGeometry, in_any_zone, open_zone
from coop.accounts.roles import Role
from coop.accounts.service import data_key_for, member_key_for
from coop.kit.crypto import DecryptionError
from coop.kit.db import session_scope
from tests.support.factories import Caller, make_account, sign_up_member

HOME: dict[str, Any] = {"lat": 53.408371, "lng": -2.991573, "radius_m": 250, "label": "Home on Bold Street"}


def create_zone(client: TestClient, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/me/privacy-zones", headers=caller.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def list_zones(client: TestClient, caller: Caller, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/me/privacy-zones", headers=caller.headers, params=params)
    assert response.status_code == 200
    page: dict[str, Any] = response.json()
    return page


def test_create_list_and_delete_a_zone(client: TestClient) -> None:
    member = sign_up_member(client)
    created = create_zone(client, member, HOME)
    assert set(created) == {"zone_id", "lat", "lng", "radius_m", "label", "created_at", "pings_deleted"}
    assert created["pings_deleted"] == 0
    assert (created["lat"], created["lng"], created["radius_m"], created["label"]) == \
        (HOME["lat"], HOME["lng"], 250.0, HOME["label"])
    assert created["created_at"].endswith("Z")
    unlabelled = create_zone(client, member, {"lat": 53.4, "lng": -2.9, "radius_m": 50.5})
    assert unlabelled["label"] is None and unlabelled["radius_m"] == 50.5

    listed = list_zones(client, member)
    without_count = [{k: v for k, v in zone.items() if k != "pings_deleted"} for zone in (created, unlabelled)]
    assert listed["items"] == without_count and listed["next_cursor"] is None

    assert client.delete(f"/v1/me/privacy-zones/{created['zone_id']}", headers=member.headers).status_code == 204
    assert list_zones(client, member)["items"] == without_count[1:]
    assert client.delete(f"/v1/me/privacy-zones/{created['zone_id']}", headers=member.headers).status_code == 404


def test_zone_listing_paginates(client: TestClient) -> None:
    member = sign_up_member(client)
    made = [create_zone(client, member, {"lat": 53.0 + n / 100, "lng": -3.0, "radius_m": 100})["zone_id"]
            for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = list_zones(client, member, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [zone["zone_id"] for zone in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made


def test_zones_are_encrypted_at_rest(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    other = make_account(app, Role.MEMBER)
    zone_id = create_zone(client, member, HOME)["zone_id"]
    with app.state.engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(sa.text("SELECT * FROM privacy_zone"))]
    [row] = rows
    assert set(row) == {"id", "member_id", "blob", "created_at"}
    blob = bytes(row["blob"])
    # Only strings long enough not to occur by chance in random ciphertext or a UUID are checked.
    everything = repr(row).encode() + blob
    for clear in ("53.408371", "53.40837", "2.991573", "Bold Street"):
        assert clear.encode() not in everything, clear
    assert len(blob) >= 12 + 16  # nonce and tag: it is AES-GCM output, not the plaintext
    # The ciphertext opens only under this member's key and bound to this zone id.
    with session_scope(app.state.engine) as session:
        data_key = data_key_for(member_key_for(session, member.account_id), app.state.keyring)
        assert data_key is not None
        assert open_zone(data_key, blob, zone_id=zone_id).label == HOME["label"]
        with pytest.raises(DecryptionError):
            open_zone(data_key, blob, zone_id="another-zone")
        other_key = data_key_for(member_key_for(session, other.account_id), app.state.keyring)
        assert other_key is not None
        with pytest.raises(DecryptionError):
            open_zone(other_key, blob, zone_id=zone_id)


def test_the_audit_trail_never_holds_zone_geometry(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    zone_id = create_zone(client, member, HOME)["zone_id"]
    client.delete(f"/v1/me/privacy-zones/{zone_id}", headers=member.headers)
    with app.state.engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(sa.text(
            "SELECT action, subject_id, detail FROM audit_event WHERE subject_type = 'privacy_zone'"))]
    assert sorted(action for action, *_ in rows) == ["privacy_zone.created", "privacy_zone.deleted"]
    assert all(subject == zone_id for _, subject, _ in rows)
    assert "53.40" not in repr(rows) and "Bold" not in repr(rows)


@pytest.mark.parametrize("radius", [49.99, 0, -100, 5000.01, 1e9])
def test_radius_outside_50_to_5000_is_422(client: TestClient, radius: float) -> None:
    member = sign_up_member(client)
    response = client.post("/v1/me/privacy-zones", headers=member.headers, json={**HOME, "radius_m": radius})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["loc"][-1] == "radius_m"
    assert list_zones(client, member)["items"] == []


@pytest.mark.parametrize("radius", [50, 5000])
def test_radius_bounds_are_inclusive(client: TestClient, radius: int) -> None:
    member = sign_up_member(client)
    assert create_zone(client, member, {**HOME, "radius_m": radius})["radius_m"] == radius


@pytest.mark.parametrize("change", [
    {"lat": 90.0001}, {"lat": -91}, {"lng": 180.5}, {"lng": -181}, {"lat": "53.4"}, {"lng": None},
    {"lat": True}, {"label": "x" * 101}, {"colour": "red"}, {"radius_m": "250"},
])
def test_invalid_zones_are_422(client: TestClient, change: dict[str, Any]) -> None:
    member = sign_up_member(client)
    response = client.post("/v1/me/privacy-zones", headers=member.headers, json={**HOME, **change})
    assert response.status_code == 422, change


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_coordinates_are_422(client: TestClient, literal: str) -> None:
    member = sign_up_member(client)
    for field in ("lat", "lng", "radius_m"):
        raw = '{"lat": 53.4, "lng": -2.9, "radius_m": 100}'.replace(
            {"lat": "53.4", "lng": "-2.9", "radius_m": "100"}[field], literal, 1)
        response = client.post("/v1/me/privacy-zones", headers={**member.headers, "Content-Type": "application/json"},
                               content=raw)
        assert response.status_code == 422, (field, literal)
    assert list_zones(client, member)["items"] == []


def test_a_member_sees_and_deletes_only_their_own_zones(client: TestClient, app: FastAPI) -> None:
    alice = sign_up_member(client)
    bob = make_account(app, Role.MEMBER)
    zone_id = create_zone(client, alice, HOME)["zone_id"]
    assert list_zones(client, bob)["items"] == []
    response = client.delete(f"/v1/me/privacy-zones/{zone_id}", headers=bob.headers)
    assert response.status_code == 404 and response.json()["detail"] == "no such privacy zone"
    assert [z["zone_id"] for z in list_zones(client, alice)["items"]] == [zone_id]


def test_a_member_holds_at_most_the_maximum_number_of_zones(client: TestClient) -> None:
    member = sign_up_member(client)
    for n in range(MAX_ZONES_PER_MEMBER):
        create_zone(client, member, {"lat": 50 + n / 10, "lng": -3.0, "radius_m": 100})
    response = client.post("/v1/me/privacy-zones", headers=member.headers, json=HOME)
    assert response.status_code == 409
    first = list_zones(client, member, limit=1)["items"][0]["zone_id"]
    client.delete(f"/v1/me/privacy-zones/{first}", headers=member.headers)
    create_zone(client, member, HOME)


def test_member_zones_gives_the_ingest_filter_the_decrypted_geometry(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    other = make_account(app, Role.MEMBER)
    create_zone(client, member, HOME)
    create_zone(client, member, {"lat": 53.38, "lng": -2.9, "radius_m": 1000})
    create_zone(client, other, {"lat": 0.5, "lng": 0.5, "radius_m": 50})
    without_zones = make_account(app, Role.MEMBER)
    with session_scope(app.state.engine) as session:
        zones = member_zones(session, member_id=member.account_id, keyring=app.state.keyring)
        assert member_zones(session, member_id=without_zones.account_id, keyring=app.state.keyring) == []
    assert zones == [ZoneGeometry(lat=HOME["lat"], lng=HOME["lng"], radius_m=250.0, label=HOME["label"]),
                     ZoneGeometry(lat=53.38, lng=-2.9, radius_m=1000.0, label=None)]
    # ~111 m north of home is inside its 250 m circle; ~2.2 km north is in neither zone.
    assert in_any_zone(zones, HOME["lat"] + 0.001, HOME["lng"])
    assert not in_any_zone(zones, HOME["lat"] + 0.02, HOME["lng"])
    assert math.isclose(zones[1].radius_m, 1000.0)


def test_zones_are_gone_from_the_table_after_delete(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    zone_id = create_zone(client, member, HOME)["zone_id"]
    client.delete(f"/v1/me/privacy-zones/{zone_id}", headers=member.headers)
    with session_scope(app.state.engine) as session:
        assert session.get(PrivacyZone, zone_id) is None


def test_pausing_and_resuming_collection(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    assert client.get("/v1/me", headers=member.headers).json()["collection_paused"] is False
    for paused in (True, True, False, False, True):
        response = client.put("/v1/me/collection", headers=member.headers, json={"paused": paused})
        assert response.status_code == 200
        assert response.json() == {"paused": paused}
        assert client.get("/v1/me", headers=member.headers).json()["collection_paused"] is paused
    with app.state.engine.connect() as connection:
        actions = [row[0] for row in connection.execute(sa.text(
            "SELECT action FROM audit_event WHERE subject_type = 'account' ORDER BY at"))]
    assert actions == ["collection.paused", "collection.resumed", "collection.paused"]
    other = sign_up_member(client)
    assert client.get("/v1/me", headers=other.headers).json()["collection_paused"] is False


@pytest.mark.parametrize("body", [{"paused": "yes"}, {"paused": 1}, {}, {"paused": True, "x": 1}, None])
def test_malformed_pause_bodies_are_422(client: TestClient, body: Any) -> None:
    member = sign_up_member(client)
    response = client.put("/v1/me/collection", headers=member.headers, json=body)
    assert response.status_code == 422
    assert client.get("/v1/me", headers=member.headers).json()["collection_paused"] is False


def test_erasure_can_delete_all_of_a_members_zones(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    other = make_account(app, Role.MEMBER)
    for n in range(3):
        create_zone(client, member, {**HOME, "lat": 53.0 + n / 10})
    kept = create_zone(client, other, HOME)["zone_id"]
    with session_scope(app.state.engine) as session:
        assert delete_member_zones(session, member_id=member.account_id) == 3
    with session_scope(app.state.engine) as session:
        assert delete_member_zones(session, member_id=member.account_id) == 0
        assert member_zones(session, member_id=member.account_id, keyring=app.state.keyring) == []
    assert list_zones(client, member)["items"] == []
    assert [z["zone_id"] for z in list_zones(client, other)["items"]] == [kept]


def test_any_label_text_round_trips_through_encryption(client: TestClient) -> None:
    member = sign_up_member(client)
    label = "Nain's \u0000 \u5bb6 \U0001f3e0 \"quoted\""
    created = create_zone(client, member, {**HOME, "label": label})
    assert created["label"] == label
    assert list_zones(client, member)["items"][0]["label"] == label
