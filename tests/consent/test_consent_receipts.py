"""Consent receipts: the ISO/IEC TS 27560 / Kantara fields, PyJWT verification against /v1/coop's JWKS,
visibility to their member only, and the verification example of docs/consent.md run as written."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from coop.kit.crypto import Keyring, b64url, b64url_decode
from tests.consent.test_consent import PURPOSE, put_consent
from tests.support.factories import make_account, sign_up_member

DOC = Path(__file__).resolve().parents[2] / "docs" / "consent.md"

REQUIRED_FIELDS = {"record_id", "schema_version", "pii_principal_id", "pii_controllers", "purposes",
                   "event_type", "event_time", "policy_version", "collection_method", "withdrawal_method",
                   "jurisdiction"}


def verify_with_pyjwt(client: TestClient, jws: str) -> dict[str, Any]:
    jwks = client.get("/v1/coop").json()["jwks"]
    header = jwt.get_unverified_header(jws)
    assert header["alg"] == "EdDSA"
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]].key
    payload: dict[str, Any] = jwt.decode(jws, key=key, algorithms=["EdDSA"])
    return payload


def test_a_receipt_carries_the_standard_fields(client: TestClient, settings: Any) -> None:
    member = sign_up_member(client)
    body = put_consent(client, member, PURPOSE, given=True).json()
    receipt = body["receipt"]["receipt"]
    assert set(receipt) >= REQUIRED_FIELDS
    assert receipt["record_id"] == body["receipt_id"]
    assert receipt["pii_principal_id"] == member.account_id
    assert receipt["pii_controllers"][0]["name"] == settings.name
    assert receipt["purposes"] == [{"code": PURPOSE, "dpv": "dpv:ImproveTransportMobility",
                                    "title": "Transport planning", "legal_basis": "dpv:Consent"}]
    assert receipt["event_type"] == "given"
    assert receipt["policy_version"] == "1"
    assert receipt["jurisdiction"] == "GB"
    assert receipt["event_time"].endswith("Z")
    assert datetime.fromisoformat(receipt["event_time"]) == datetime.fromisoformat(body["changed_at"])
    assert "given" in receipt["withdrawal_method"] and receipt["collection_method"]
    assert receipt["previous_record_id"] is None

    withdrawn = put_consent(client, member, PURPOSE, given=False).json()["receipt"]["receipt"]
    assert withdrawn["event_type"] == "withdrawn"
    assert withdrawn["previous_record_id"] == receipt["record_id"]


def test_receipts_verify_with_pyjwt_against_the_published_jwks(client: TestClient) -> None:
    member = sign_up_member(client)
    for given in (True, False, True):
        put_consent(client, member, PURPOSE, given=given)
    events = client.get("/v1/me/consents/events", headers=member.headers).json()["items"]
    assert len(events) == 3
    for event in events:
        response = client.get(f"/v1/me/receipts/{event['receipt_id']}", headers=member.headers)
        assert response.status_code == 200
        signed = response.json()
        assert verify_with_pyjwt(client, signed["jws"]) == signed["receipt"]
        assert signed["receipt"]["event_type"] == event["state"]
        assert signed["receipt"]["event_id"] == event["event_id"]


def test_an_altered_receipt_does_not_verify(client: TestClient) -> None:
    member = sign_up_member(client)
    jws = put_consent(client, member, PURPOSE, given=True).json()["receipt"]["jws"]
    header, payload, signature = jws.split(".")
    receipt = json.loads(b64url_decode(payload))
    receipt["event_type"] = "withdrawn"
    forged = ".".join([header, b64url(json.dumps(receipt).encode()), signature])
    with pytest.raises(jwt.InvalidSignatureError):
        verify_with_pyjwt(client, forged)


def test_another_members_receipt_is_404(client: TestClient, app: FastAPI) -> None:
    alice = sign_up_member(client)
    bob = make_account(app, Role.MEMBER)
    receipt_id = put_consent(client, alice, PURPOSE, given=True).json()["receipt_id"]
    assert client.get(f"/v1/me/receipts/{receipt_id}", headers=alice.headers).status_code == 200
    response = client.get(f"/v1/me/receipts/{receipt_id}", headers=bob.headers)
    assert response.status_code == 404
    assert response.json()["detail"] == "no such receipt"
    assert client.get("/v1/me/receipts/not-a-receipt", headers=alice.headers).status_code == 404


def documented_verifier() -> Any:
    """``verify_receipt`` exactly as docs/consent.md shows it (its first Python block)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "docs/consent.md has no Python example"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify_receipt"]


def test_the_documented_verification_example_works(client: TestClient) -> None:
    verify_receipt = documented_verifier()
    member = sign_up_member(client)
    receipt_id = put_consent(client, member, "public-health", given=True).json()["receipt_id"]
    client.headers.update(member.headers)
    receipt = verify_receipt(client, receipt_id)
    assert receipt["record_id"] == receipt_id
    assert receipt["purposes"][0]["code"] == "public-health"
    assert receipt["pii_principal_id"] == member.account_id


def test_the_documented_example_rejects_a_receipt_that_differs_from_its_jws(client: TestClient,
                                                                            app: FastAPI) -> None:
    verify_receipt = documented_verifier()
    member = sign_up_member(client)
    receipt_id = put_consent(client, member, PURPOSE, given=True).json()["receipt_id"]
    # A JWS signed by some other key is refused even though its kid names the co-op's key.
    impostor = Keyring(master=b"\0" * 32, signing=Ed25519PrivateKey.generate())
    genuine = client.get(f"/v1/me/receipts/{receipt_id}", headers=member.headers).json()
    forged_jws = impostor.sign_jws(genuine["receipt"])
    forged_header = json.loads(b64url_decode(forged_jws.split(".")[0]))
    forged_header["kid"] = app.state.keyring.kid
    _, payload, signature = forged_jws.split(".")
    forged_jws = ".".join([b64url(json.dumps(forged_header).encode()), payload, signature])

    class ForgingClient:
        def get(self, url: str) -> Any:
            response = client.get(url, headers=member.headers)
            if "/receipts/" in url:
                return response.__class__(200, json={"receipt": genuine["receipt"], "jws": forged_jws},
                                          request=response.request)
            return response

    with pytest.raises(jwt.InvalidSignatureError):
        verify_receipt(ForgingClient(), receipt_id)
