"""Creating a privacy zone through the API deletes the member's stored pings inside it, and only those."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support.ingest import consenting_member, ping, stored_pings

HOME = (53.40838, -2.99164)
WORK = (53.40550, -2.98500)  # about 490 m away


def test_a_new_zone_deletes_stored_pings_inside_it(client: TestClient, app: FastAPI) -> None:
    member = consenting_member(app)
    other = consenting_member(app, name="Neighbour")
    batch = [ping("home-1", lat=HOME[0], lng=HOME[1]), ping("home-2", lat=HOME[0] + 0.0005, lng=HOME[1]),
             ping("work-1", lat=WORK[0], lng=WORK[1])]
    for caller in (member, other):
        assert client.post("/v1/pings", json={"pings": batch}, headers=caller.headers).json()["accepted"] == 3

    created = client.post("/v1/me/privacy-zones", headers=member.headers,
                          json={"lat": HOME[0], "lng": HOME[1], "radius_m": 150, "label": "Home"})
    assert created.status_code == 201, created.text
    assert created.json()["pings_deleted"] == 2
    assert set(stored_pings(app, member.account_id)) == {"work-1"}
    assert set(stored_pings(app, other.account_id)) == {"home-1", "home-2", "work-1"}

    again = client.post("/v1/pings", json={"pings": [ping("home-3", lat=HOME[0], lng=HOME[1])]},
                        headers=member.headers).json()
    assert again["dropped"]["privacy_zone"] == 1 and again["accepted"] == 0
