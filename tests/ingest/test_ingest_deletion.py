"""Deleting stored pings: inside a privacy zone (exact distance after decrypting) and all of a member's."""

from __future__ import annotations

import math
import random

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from h3.api import basic_int
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from consent.zones import ZoneGeometry, distance_m
from coop.ingest.cells import descendant_range, zone_cell_ranges, zone_disk
from coop.ingest.service import delete_member_pings, delete_pings_in_zone
from coop.kit.db import session_scope
from tests.support.ingest import consenting_member, member_secrets, ping, stored_pings


def scatter(centre: tuple[float, float], *, count: int, max_m: float, seed: int) -> list[tuple[float, float]]:
    """Points around ``centre`` up to ``max_m`` away (denser near the centre)."""
    rng = random.Random(seed)
    points = []
    for _ in range(count):
        bearing, distance = rng.uniform(0, 2 * math.pi), rng.uniform(0, max_m)
        dlat = distance * math.cos(bearing) / 111_195
        dlng = distance * math.sin(bearing) / (111_195 * math.cos(math.radians(centre[0])))
        points.append((round(centre[0] + dlat, 7), round(centre[1] + dlng, 7)))
    return points


@pytest.mark.parametrize(("radius_m", "spread_m"), [(50, 300), (250, 800), (5000, 7000)])
def test_delete_pings_in_zone_removes_exactly_the_pings_within_the_radius(
        client: TestClient, app: FastAPI, radius_m: float, spread_m: float) -> None:
    member, neighbour = consenting_member(app), consenting_member(app, name="Neighbour")
    centre = (53.40, -2.98)
    points = scatter(centre, count=400, max_m=spread_m, seed=int(radius_m))
    batch = [ping(f"p{n}", lat=lat, lng=lng) for n, (lat, lng) in enumerate(points)]
    for caller in (member, neighbour):
        assert client.post("/v1/pings", json={"pings": batch}, headers=caller.headers).json()["accepted"] == 400

    zone = ZoneGeometry(lat=centre[0], lng=centre[1], radius_m=radius_m)
    inside = {f"p{n}" for n, (lat, lng) in enumerate(points) if distance_m(*centre, lat, lng) <= radius_m}
    assert 0 < len(inside) < 400
    member_no, data_key = member_secrets(app, member.account_id)
    with session_scope(app.state.engine) as session:
        deleted = delete_pings_in_zone(session, member_no=member_no, zone=zone, data_key=data_key)
    assert deleted == len(inside)
    assert set(stored_pings(app, member.account_id)) == {f"p{n}" for n in range(400)} - inside
    assert len(stored_pings(app, neighbour.account_id)) == 400


def test_delete_member_pings_counts_and_spares_other_members(client: TestClient, app: FastAPI) -> None:
    member, neighbour = consenting_member(app), consenting_member(app, name="Neighbour")
    client.post("/v1/pings", json={"pings": [ping(f"p{n}") for n in range(7)]}, headers=member.headers)
    client.post("/v1/pings", json={"pings": [ping("q")]}, headers=neighbour.headers)
    member_no, _key = member_secrets(app, member.account_id)
    with session_scope(app.state.engine) as session:
        assert delete_member_pings(session, member_no=member_no) == 7
    with session_scope(app.state.engine) as session:
        assert delete_member_pings(session, member_no=member_no) == 0
    assert stored_pings(app, member.account_id) == {}
    assert set(stored_pings(app, neighbour.account_id)) == {"q"}


@hypothesis_settings(max_examples=40, deadline=None)
@given(lat=st.floats(min_value=-80, max_value=80), lng=st.floats(min_value=-179, max_value=179),
       parent_res=st.integers(min_value=0, max_value=9))
def test_descendant_ranges_hold_exactly_the_descendants(lat: float, lng: float, parent_res: int) -> None:
    cell = basic_int.latlng_to_cell(lat, lng, 10)
    parent = basic_int.cell_to_parent(cell, parent_res)
    low, high = descendant_range(parent, 10)
    assert low <= cell <= high
    for neighbour in basic_int.grid_disk(cell, 3):
        inside = low <= neighbour <= high
        assert inside == (basic_int.cell_to_parent(neighbour, parent_res) == parent)


@hypothesis_settings(max_examples=25, deadline=None)
@given(lat=st.floats(min_value=-70, max_value=70), lng=st.floats(min_value=-179, max_value=179),
       radius=st.floats(min_value=50, max_value=5000), bearing=st.floats(min_value=0, max_value=2 * math.pi),
       fraction=st.floats(min_value=0, max_value=1))
def test_zone_cells_cover_every_point_of_the_disc(lat: float, lng: float, radius: float, bearing: float,
                                                  fraction: float) -> None:
    distance = radius * fraction
    dlat = distance * math.cos(bearing) / 111_195
    dlng = distance * math.sin(bearing) / (111_195 * math.cos(math.radians(lat)))
    point_lat, point_lng = lat + dlat, lng + dlng
    zone = ZoneGeometry(lat=lat, lng=lng, radius_m=radius)
    if distance_m(lat, lng, point_lat, point_lng) > radius:
        return
    cells = zone_disk(zone)
    cell = basic_int.latlng_to_cell(point_lat, point_lng, 10)
    assert cell in cells
    assert any(low <= cell <= high for low, high in zone_cell_ranges(cells))
