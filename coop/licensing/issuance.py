"""Issuing a licence: the approved terms as a document, signed as a compact JWS.

Invariants: a licence is issued only through :func:`issue_licence`, inside the transaction that
approves its request (``licence.request_id`` is unique, so a request never gets two licences); it reads
one table family, joined or opened in that same transaction (``coop.tables.service.open_family``, which
refuses to open one beyond the privacy budget, so the whole approval rolls back); its dataset carries
the family's ``kind`` and ``epsilon_per_day`` (an open family's epsilon stands over the request's);
``licence.document`` is exactly the JWS payload and never changes afterwards; ``valid_from`` is the
approval time (whole seconds) and ``valid_until`` is ``valid_from + duration_days``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from consent.models import Purpose
from coop.kit.audit import record_audit
from coop.kit.crypto import Keyring
from coop.kit.settings import Settings
from coop.kit.timeutil import rfc3339
from coop.ledger.postings import post_licence_invoice
from coop.licensing.models import Licence, LicenceRequest
from coop.tables import service as tables

DOCUMENT_TYPE = "coop-data-licence"
DOCUMENT_SCHEMA_VERSION = "2"
"""2: the document names its table family (``family_id``) and the dataset its ``kind`` and ``epsilon_per_day``."""

PROHIBITIONS: list[dict[str, str]] = [
    {"code": "no-reidentification",
     "text": "The licensee shall not attempt to re-identify any person, household or device, "
             "or to infer anything about an individual, from the licensed data."},
    {"code": "no-linkage-to-single-out",
     "text": "The licensee shall not link or combine the licensed data with any other data in a way "
             "that singles out, or could single out, an individual."},
    {"code": "no-onward-distribution",
     "text": "The licensee shall not publish, sell, share or otherwise distribute the released files; "
             "only results derived from them for the licensed purpose may be published."},
]

CONDITIONS: list[str] = [
    "Use the data only for the purpose stated in this licence.",
    "Releases may be built and downloaded only while the licence is active and its fee is paid.",
    "The licence ends at valid_until, or earlier if the co-op's board revokes it.",
]


def licence_document(*, licence: Licence, request: LicenceRequest, purpose: Purpose,
                     approved_by: Sequence[str], licensor: str) -> dict[str, Any]:
    """The approved terms, as signed (only JSON types, times in RFC 3339 UTC)."""
    return {
        "type": DOCUMENT_TYPE,
        "schema_version": DOCUMENT_SCHEMA_VERSION,
        "licence_id": licence.id,
        "request_id": request.id,
        "licensor": licensor,
        "licensee_account_id": licence.licensee_id,
        "organisation": licence.organisation,
        "title": request.title,
        "purpose": {"code": purpose.code, "title": purpose.title, "dpv": purpose.dpv},
        "public_benefit": request.public_benefit,
        "dataset": licence.dataset,
        "family_id": licence.family_id,
        "k": licence.k,
        "fee_pence": licence.fee_pence,
        "currency": "GBP",
        "valid_from": rfc3339(licence.valid_from),
        "valid_until": rfc3339(licence.valid_until),
        "terms_version": licence.terms_version,
        "approved_by": sorted(approved_by),
        "prohibitions": PROHIBITIONS,
        "conditions": CONDITIONS,
    }


def issue_licence(session: Session, *, request: LicenceRequest, approved_by: Sequence[str], at: datetime,
                  settings: Settings, keyring: Keyring) -> Licence:
    """Issue the signed licence of an approved ``request`` (same transaction as the approval)."""
    purpose = session.get(Purpose, request.purpose_code)
    if purpose is None:  # the foreign key makes this impossible; keep mypy and readers certain
        raise LookupError(f"purpose {request.purpose_code!r} vanished")
    valid_from = at.replace(microsecond=0)
    licence_id = str(uuid.uuid4())
    family, opened = tables.open_family(session, purpose_code=request.purpose_code, dataset=request.dataset,
                                        settings=settings, at=at, licence_id=licence_id)
    dataset = {**request.dataset, "kind": family.kind, "epsilon_per_day": family.epsilon_per_day}
    licence = Licence(
        id=licence_id,
        request_id=request.id,
        licensee_id=request.requester_id,
        organisation=request.organisation,
        purpose_code=request.purpose_code,
        dataset=dataset,
        k=int(request.dataset["k"]),
        fee_pence=request.fee_pence,
        valid_from=valid_from,
        valid_until=valid_from + timedelta(days=request.duration_days),
        terms_version=settings.terms_version,
        document={},
        jws="",
        created_at=at,
        family_id=family.id,
    )
    licence.document = licence_document(licence=licence, request=request, purpose=purpose,
                                        approved_by=approved_by, licensor=settings.name)
    licence.jws = keyring.sign_jws(licence.document)
    session.add(licence)
    session.flush()
    record_audit(session, actor_id=None, action="licence.issued", subject_type="licence",
                 subject_id=licence.id,
                 detail={"request_id": request.id, "licensee_account_id": licence.licensee_id,
                         "fee_pence": licence.fee_pence, "valid_from": rfc3339(licence.valid_from),
                         "valid_until": rfc3339(licence.valid_until), "family_id": family.id,
                         "opened_family": opened})
    post_licence_invoice(session, licence_id=licence.id, fee_pence=licence.fee_pence, at=at)
    return licence
