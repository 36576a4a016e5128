"""Licences: the contract's shape, signed terms verifiable with PyJWT, status, revocation, visibility."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.models import Role
from coop.kit.db import session_scope
from coop.kit.timeutil import utcnow
from coop.licensing.models import Licence
from tests.support.factories import make_account
from tests.support.licensing import VALID_DATASET, approved_licence, board_members

LICENCE_FIELDS = {"licence_id", "request_id", "licensee_account_id", "organisation", "purpose", "dataset", "k",
                  "fee_pence", "paid_pence", "status", "valid_from", "valid_until", "terms_version",
                  "family_id", "document", "jws"}

GOVERNANCE_DOC = Path(__file__).resolve().parents[2] / "docs" / "governance.md"


def _parse(timestamp: str) -> datetime:
    assert timestamp.endswith("Z"), timestamp
    return datetime.fromisoformat(timestamp)


def test_licence_has_exactly_the_contract_shape_and_the_approved_terms(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER, name="Mo")
    before = utcnow().replace(microsecond=0)
    licence = approved_licence(client, app, modeller, purpose="public-health", duration_days=90, fee_pence=2500,
                               dataset={"k": 7})
    assert set(licence) == LICENCE_FIELDS
    assert licence["licensee_account_id"] == modeller.account_id
    assert licence["organisation"] == "Merseytravel modelling unit"
    assert licence["purpose"] == "public-health"
    assert licence["dataset"] == {**VALID_DATASET, "k": 7, "kind": "presence", "epsilon_per_day": 0.5}
    assert licence["family_id"] is not None
    assert licence["k"] == 7 and licence["fee_pence"] == 2500 and licence["paid_pence"] == 0
    assert licence["status"] == "active"
    assert licence["terms_version"] == "2026-11"
    valid_from, valid_until = _parse(licence["valid_from"]), _parse(licence["valid_until"])
    assert before <= valid_from <= utcnow()
    assert valid_until - valid_from == timedelta(days=90)

    document = licence["document"]
    assert document["licence_id"] == licence["licence_id"]
    assert document["request_id"] == licence["request_id"]
    assert document["licensee_account_id"] == modeller.account_id
    assert document["purpose"] == {"code": "public-health", "title": "Public health", "dpv": "dpv:ImproveHealthcare"}
    assert document["dataset"] == licence["dataset"] and document["k"] == 7 and document["fee_pence"] == 2500
    assert document["family_id"] == licence["family_id"] and document["schema_version"] == "2"
    assert (document["valid_from"], document["valid_until"]) == (licence["valid_from"], licence["valid_until"])
    assert document["terms_version"] == "2026-11"
    assert document["licensor"] == app.state.settings.name
    assert {p["code"] for p in document["prohibitions"]} == {
        "no-reidentification", "no-linkage-to-single-out", "no-onward-distribution"}
    assert app.state.keyring.verify_jws(licence["jws"]) == document


def test_the_signature_verifies_with_pyjwt_against_the_published_jwks(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = approved_licence(client, app, modeller)
    jwks = client.get("/v1/coop").json()["jwks"]
    header = jwt.get_unverified_header(licence["jws"])
    assert header["alg"] == "EdDSA"
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    assert jwt.decode(licence["jws"], key=key, algorithms=["EdDSA"]) == licence["document"]

    head, payload, signature = licence["jws"].split(".")
    forged_terms = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"fee_pence":150000', b'"fee_pence":1')).decode()
    assert forged_terms != payload
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{forged_terms}.{signature}", key=key, algorithms=["EdDSA"])


def test_the_verification_example_in_the_docs_works(client: TestClient, app: FastAPI) -> None:
    blocks = re.findall(r"```python\n(.*?)```", GOVERNANCE_DOC.read_text(), flags=re.S)
    setup, verification = blocks[-2], blocks[-1]
    assert "httpx.Client" in setup and "jwt.decode" in verification
    modeller = make_account(app, Role.MODELLER)
    licence = approved_licence(client, app, modeller)
    with TestClient(app, headers=modeller.headers) as modeller_client:
        namespace = {"client": modeller_client, "licence_id": licence["licence_id"], "jwt": jwt}
        exec(compile(verification, str(GOVERNANCE_DOC), "exec"), namespace)  # noqa: S102
    assert namespace["signed_terms"] == licence["document"]


def test_an_expired_licence_shows_expired(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    [board] = board_members(app, 1)
    licence = approved_licence(client, app, modeller)
    with session_scope(app.state.engine) as session:
        row = session.get(Licence, licence["licence_id"])
        assert row is not None
        row.valid_until = utcnow() - timedelta(minutes=1)
        session.add(row)
    assert client.get(f"/v1/licences/{licence['licence_id']}", headers=modeller.headers).json()["status"] == "expired"
    listed = client.get("/v1/licences", headers=board.headers).json()["items"]
    assert [item["status"] for item in listed] == ["expired"]
    # Revocation outranks expiry.
    assert client.post(f"/v1/licences/{licence['licence_id']}/revoke", json={"reason": "Ended early"},
                       headers=board.headers).json()["status"] == "revoked"


def test_paid_pence_comes_from_the_licence_row(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    licence = approved_licence(client, app, modeller)
    with session_scope(app.state.engine) as session:
        row = session.get(Licence, licence["licence_id"])
        assert row is not None
        row.paid_pence = 40_000
        session.add(row)
    assert client.get(f"/v1/licences/{licence['licence_id']}", headers=modeller.headers).json()["paid_pence"] == 40_000


def test_revoking_twice_is_409_and_unknown_licences_are_404(client: TestClient, app: FastAPI) -> None:
    modeller = make_account(app, Role.MODELLER)
    first, second = board_members(app, 2)
    licence_id = approved_licence(client, app, modeller)["licence_id"]
    path = f"/v1/licences/{licence_id}/revoke"
    assert client.post(path, json={"reason": "Data shared onwards"}, headers=first.headers).status_code == 200
    again = client.post(path, json={"reason": "Again"}, headers=second.headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    trail = client.get("/v1/audit", params={"subject_id": licence_id}, headers=first.headers).json()["items"]
    assert [e["detail"].get("reason") for e in trail if e["action"] == "licence.revoked"] == ["Data shared onwards"]
    assert client.post("/v1/licences/nope/revoke", json={"reason": "x"}, headers=first.headers).status_code == 404
    assert client.post(path, json={"reason": ""}, headers=first.headers).status_code == 422
    assert client.post(path, json={}, headers=first.headers).status_code == 422
    assert client.get("/v1/licences/nope", headers=first.headers).status_code == 404


def test_a_modeller_sees_only_their_own_licences(client: TestClient, app: FastAPI) -> None:
    alice = make_account(app, Role.MODELLER, name="Alice")
    bob = make_account(app, Role.MODELLER, name="Bob")
    [board] = board_members(app, 1)
    alices = approved_licence(client, app, alice)["licence_id"]
    bobs = approved_licence(client, app, bob)["licence_id"]

    assert client.get(f"/v1/licences/{bobs}", headers=alice.headers).status_code == 404
    assert client.get(f"/v1/licences/{alices}", headers=bob.headers).status_code == 404
    assert [i["licence_id"] for i in client.get("/v1/licences", headers=alice.headers).json()["items"]] == [alices]
    assert [i["licence_id"] for i in client.get("/v1/licences", headers=bob.headers).json()["items"]] == [bobs]
    board_view = client.get("/v1/licences", params={"limit": 1}, headers=board.headers).json()
    assert [i["licence_id"] for i in board_view["items"]] == [alices]
    rest = client.get("/v1/licences", params={"limit": 1, "cursor": board_view["next_cursor"]},
                      headers=board.headers).json()
    assert [i["licence_id"] for i in rest["items"]] == [bobs] and rest["next_cursor"] is None
