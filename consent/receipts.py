"""Consent receipts: the ISO/IEC TS 27560 / Kantara Consent Receipt v1.1 record of one consent event.

Invariants: a receipt is built once, when its event is recorded, and never changes; its compact JWS
(``Keyring.sign_jws``, EdDSA) has the receipt's JSON as payload, so anyone holding the co-op's public
JWK (``GET /v1/coop``) can check that the co-op issued exactly this receipt. Receipts carry no location
data. ``previous_record_id`` chains the receipts of one (member, purpose) in order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consent.models import Purpose
from coop.kit.timeutil import rfc3339

SCHEMA_VERSION = "KI-CR-v1.1.0;ISO/IEC-TS-27560:2023"
JURISDICTION = "GB"
LEGAL_BASIS = "dpv:Consent"
CONSENT_TYPE = "dpv:ExpressedConsent"
PII_CATEGORIES = ["dpv:Location"]
WITHDRAWAL_METHOD = ('PUT /v1/me/consents/{purpose} with {"given": false} from the app, at any time; '
                     "or DELETE /v1/me (erasure) to withdraw every purpose")
COLLECTION_METHODS = {
    "api": "the member's authenticated call PUT /v1/me/consents/{purpose} (the app or another client)",
    "erasure": "the member's erasure request DELETE /v1/me, which withdraws every given purpose",
}


def collection_method_text(method: str) -> str:
    """The human-readable collection method recorded in the receipt for an event ``method``."""
    return COLLECTION_METHODS.get(method, method)


def build_receipt(*, record_id: str, event_id: str, member_id: str, controller_name: str, purpose: Purpose,
                  event_type: str, event_time: datetime, policy_version: str, method: str,
                  previous_record_id: str | None) -> dict[str, Any]:
    """The receipt of one consent event, as the JSON object that is signed."""
    return {
        "record_id": record_id,
        "schema_version": SCHEMA_VERSION,
        "language": "en",
        "jurisdiction": JURISDICTION,
        "pii_principal_id": member_id,
        "pii_controllers": [{"name": controller_name, "role": "controller", "jurisdiction": JURISDICTION}],
        "purposes": [{
            "code": purpose.code,
            "dpv": purpose.dpv,
            "title": purpose.title,
            "legal_basis": LEGAL_BASIS,
        }],
        "pii_categories": PII_CATEGORIES,
        "consent_type": CONSENT_TYPE,
        "event_id": event_id,
        "event_type": event_type,
        "event_time": rfc3339(event_time),
        "policy_version": policy_version,
        "collection_method": collection_method_text(method),
        "withdrawal_method": WITHDRAWAL_METHOD,
        "previous_record_id": previous_record_id,
    }
