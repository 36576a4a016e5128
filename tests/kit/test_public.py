"""Public endpoints: health, readiness, the co-op description with a JWKS that verifies our JWS."""

from __future__ import annotations

import jwt
from fastapi import FastAPI
from fastapi.testclient import TestClient

EXPECTED_PURPOSES = {
    "transport-planning": "dpv:ImproveTransportMobility",
    "public-health": "dpv:ImproveHealthcare",
    "urban-planning": "dpv:PublicPolicyMaking",
    "environment": "dpv:PublicBenefit",
    "academic-research": "dpv:AcademicResearch",
    "commercial-insights": "dpv:SellInsightsFromData",
}


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_database_does_not_answer(settings: object, tmp_path: object) -> None:
    from api.app import create_app
    from coop.kit.settings import Settings

    assert isinstance(settings, Settings)
    broken = settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    with TestClient(create_app(broken)) as broken_client:
        response = broken_client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")


def test_purposes_are_the_six_of_the_contract(client: TestClient) -> None:
    body = client.get("/v1/purposes").json()
    assert body["next_cursor"] is None
    assert {p["code"]: p["dpv"] for p in body["items"]} == EXPECTED_PURPOSES
    assert all(p["policy_version"] and p["title"] and p["description"] for p in body["items"])


def test_coop_description_and_jwks_verify_a_server_signature(client: TestClient, app: FastAPI) -> None:
    body = client.get("/v1/coop").json()
    assert body["k_floor"] == 2
    assert (body["finest_resolution"], body["coarsest_resolution"]) == (10, 7)
    assert body["terms_version"] == "2026-11"
    assert {p["code"] for p in body["purposes"]} == set(EXPECTED_PURPOSES)
    [jwk] = body["jwks"]["keys"]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and "d" not in jwk

    token = app.state.keyring.sign_jws({"hello": "members"})
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == jwk["kid"]
    key = jwt.PyJWK(jwk).key
    payload = jwt.api_jws.PyJWS().decode(token, key=key, algorithms=["EdDSA"])
    assert payload == b'{"hello":"members"}'
