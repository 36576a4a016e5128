"""``GET /v1/me/export``: one JSON document with everything held about the member, and only theirs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from coop.accounts.models import ApiToken
from coop.accounts.roles import Role
from coop.kit.db import session_scope
from coop.rights.schemas import EXPORT_FORMAT, EXPORT_FORMAT_VERSION
from tests.rights.test_rights_pings import in_time_order, varied_pings
from tests.support.factories import Caller, make_account, sign_up_member
from tests.support.ledger import make_licence, make_release
from tests.support.rights import (
    assert_same_pings,
    consenting_member,
    earn_dividend,
    give_consent,
    send_pings,
)


def export_of(client: TestClient, caller: Caller) -> tuple[dict[str, Any], str]:
    response = client.get("/v1/me/export", headers=caller.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith('attachment; filename="coop-export-')
    return json.loads(response.text), response.text


def test_the_export_holds_every_part_of_the_members_data(app: FastAPI, client: TestClient) -> None:
    member = consenting_member(app, client, name="Dana")
    give_consent(client, member, "public-health")
    second = client.post("/v1/me/tokens", json={"label": "tablet"}, headers=member.headers).json()
    zone = client.post("/v1/me/privacy-zones", headers=member.headers,
                       json={"lat": 53.3, "lng": -2.7, "radius_m": 200, "label": "home"}).json()
    sent = varied_pings()
    send_pings(client, member, sent)
    dividend_id = earn_dividend(app, client, member, units=3)

    document, text = export_of(client, member)

    assert list(document) == ["export", "account", "tokens", "consents", "consent_events", "privacy_zones",
                              "releases", "ledger", "audit_events", "pings"]
    meta = document["export"]
    assert (meta["format"], meta["format_version"], meta["member_id"]) == (
        EXPORT_FORMAT, EXPORT_FORMAT_VERSION, member.account_id)
    assert meta["generated_at"].endswith("Z")

    account = document["account"]
    assert (account["account_id"], account["display_name"], account["roles"], account["erased_at"]) == (
        member.account_id, "Dana", ["member"], None)

    assert {t["token_id"]: t["label"] for t in document["tokens"]} == {
        member.token_id: "first token", second["token_id"]: "tablet"}
    with session_scope(app.state.engine) as session:
        hashes = session.exec(select(ApiToken.token_hash).where(ApiToken.account_id == member.account_id)).all()
    assert len(hashes) == 2
    for secret in (*hashes, member.token, second["token"]):
        assert secret not in text

    consents = {c["purpose"]: c["state"] for c in document["consents"]}
    assert consents["transport-planning"] == consents["public-health"] == "given"
    assert consents["environment"] == "not_given"
    events = document["consent_events"]
    assert [(e["purpose"], e["state"]) for e in events] == [("transport-planning", "given"), ("public-health", "given")]
    for event in events:
        assert app.state.keyring.verify_jws(event["jws"]) == event["receipt"]
        assert event["receipt"]["pii_principal_id"] == member.account_id

    assert document["privacy_zones"] == client.get("/v1/me/privacy-zones", headers=member.headers).json()["items"]
    assert [z["zone_id"] for z in document["privacy_zones"]] == [zone["zone_id"]]
    assert (zone["lat"], zone["lng"], zone["radius_m"], zone["label"]) == (53.3, -2.7, 200, "home")

    assert len(document["releases"]) == 1
    release = document["releases"][0]
    assert release["organisation"] == "Transport Lab" and release["purpose"] == "transport-planning"
    assert release["contribution_units"] == 3 and release["built_at"].endswith("Z")

    ledger = document["ledger"]
    assert ledger["account"] == f"member:{member.account_id}"
    assert ledger["balance_pence"] == 10_000
    assert [(d["dividend_id"], d["amount_pence"], d["contribution_units"]) for d in ledger["dividends"]] == [
        (dividend_id, 10_000, 3)]
    assert [p["amount_pence"] for p in ledger["postings"]] == [-10_000]
    assert ledger["payouts"] == []

    actions = [event["action"] for event in document["audit_events"]]
    assert "privacy_zone.created" in actions

    assert_same_pings(in_time_order(sent), document["pings"])


def test_the_export_shows_only_ready_releases_that_counted_the_member(app: FastAPI, client: TestClient) -> None:
    member, other = consenting_member(app, client), consenting_member(app, client, name="Other")
    licensee = make_account(app, Role.MODELLER, name="Lab")
    licence_id = make_licence(app, fee_pence=0)
    built = datetime.now(UTC) - timedelta(days=1)
    counted = make_release(app, licence_id=licence_id, requested_by=licensee.account_id, built_at=built,
                           units={member.account_id: 2, other.account_id: 5})
    make_release(app, licence_id=licence_id, requested_by=licensee.account_id, built_at=built,
                 units={other.account_id: 1})
    make_release(app, licence_id=licence_id, requested_by=licensee.account_id, built_at=None,
                 units={member.account_id: 4}, status="failed")
    document, _ = export_of(client, member)
    assert [(r["release_id"], r["contribution_units"]) for r in document["releases"]] == [(counted, 2)]


def test_one_members_export_holds_nothing_of_another(app: FastAPI, client: TestClient) -> None:
    alice, bob = consenting_member(app, client, name="Alice"), consenting_member(app, client, name="Bob")
    give_consent(client, bob, "environment")
    bob_zone = client.post("/v1/me/privacy-zones", headers=bob.headers,
                           json={"lat": 53.2, "lng": -2.2, "radius_m": 100, "label": "bob's"}).json()
    send_pings(client, alice, varied_pings("a", lat0=53.41, lng0=-2.91))
    bob_pings = varied_pings("b", lat0=53.61, lng0=-2.61)
    send_pings(client, bob, bob_pings)

    document, text = export_of(client, alice)
    assert bob.account_id not in text and bob.token_id not in text and bob_zone["zone_id"] not in text
    assert document["privacy_zones"] == []
    assert {e["purpose"] for e in document["consent_events"]} == {"transport-planning"}
    assert all(p["id"].startswith("a-") for p in document["pings"])
    assert len(document["pings"]) == len(bob_pings)

    bob_document, _ = export_of(client, bob)
    assert [z["zone_id"] for z in bob_document["privacy_zones"]] == [bob_zone["zone_id"]]
    assert_same_pings(in_time_order(bob_pings), bob_document["pings"])


def test_an_empty_export_is_still_a_whole_document(app: FastAPI, client: TestClient) -> None:
    document, _ = export_of(client, consenting_member(app, client))
    assert document["pings"] == [] and document["releases"] == [] and document["privacy_zones"] == []
    assert document["ledger"]["balance_pence"] == 0


def test_exports_are_rate_limited_per_member(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    for _ in range(app.state.settings.export_rate_per_hour):
        assert client.get("/v1/me/export", headers=member.headers).status_code == 200
    refused = client.get("/v1/me/export", headers=member.headers)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    other = sign_up_member(client)
    assert client.get("/v1/me/export", headers=other.headers).status_code == 200
