"""Licence money in the ledger: the fee invoiced at approval and the payments received.

Invariants: an approved licence with a fee posts Dr licence-receivables / Cr licence-income once (the
licensing service calls :func:`post_licence_invoice` in the approving transaction); a payment posts
Dr cash / Cr licence-receivables, records a ``LicencePayment`` and adds to ``licence.paid_pence`` in
the same transaction, so ``paid_pence`` always equals the sum of the licence's payments. A payment may
not take ``paid_pence`` above ``fee_pence`` (there is no account for money nobody owes us).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session

from coop.kit.audit import record_audit
from coop.kit.errors import Conflict, NotFound
from coop.kit.timeutil import as_utc, utcnow
from coop.ledger.chart import CASH, LICENCE_INCOME, LICENCE_RECEIVABLES
from coop.ledger.journal import PostedEntry, lock_ledger, post_entry
from coop.licensing.models import Licence, LicencePayment

KIND_LICENCE_INVOICE = "licence-invoice"
KIND_LICENCE_PAYMENT = "licence-payment"


def post_licence_invoice(session: Session, *, licence_id: str, fee_pence: int,
                         at: datetime) -> PostedEntry | None:
    """Dr licence-receivables / Cr licence-income for an approved licence's fee; nothing if it is 0."""
    if fee_pence < 0:
        raise ValueError("a licence fee cannot be negative")
    if fee_pence == 0:
        return None
    return post_entry(session, kind=KIND_LICENCE_INVOICE, memo=f"licence {licence_id} approved: fee invoiced",
                      postings=[(LICENCE_RECEIVABLES, fee_pence), (LICENCE_INCOME, -fee_pence)], at=at)


def record_licence_payment(session: Session, *, licence_id: str, amount_pence: int, reference: str,
                           recorded_by: str, received_at: datetime | None = None) -> PostedEntry:
    """Record money received for a licence; 404 unknown licence, 409 if it exceeds what is owed."""
    if amount_pence <= 0:
        raise ValueError("a payment must be positive")
    lock_ledger(session)  # serialises payments, so the outstanding amount below cannot go stale
    licence = session.get(Licence, licence_id, with_for_update=True)
    if licence is None:
        raise NotFound("no such licence")
    outstanding = licence.fee_pence - licence.paid_pence
    if amount_pence > outstanding:
        raise Conflict(f"payment of {amount_pence} pence exceeds the {max(outstanding, 0)} pence "
                       "outstanding on this licence")
    at = as_utc(received_at or utcnow())
    entry = post_entry(session, kind=KIND_LICENCE_PAYMENT,
                       memo=f"licence {licence_id} payment received: {reference}",
                       postings=[(CASH, amount_pence), (LICENCE_RECEIVABLES, -amount_pence)], at=at)
    payment = LicencePayment(id=str(uuid.uuid4()), licence_id=licence_id, amount_pence=amount_pence,
                             reference=reference, received_at=at, recorded_by=recorded_by,
                             ledger_seq=entry.seq)
    licence.paid_pence += amount_pence
    session.add(payment)
    session.add(licence)
    record_audit(session, actor_id=recorded_by, action="licence.payment", subject_type="licence",
                 subject_id=licence_id, detail={"payment_id": payment.id, "amount_pence": amount_pence,
                                                "ledger_seq": entry.seq})
    session.flush()
    return entry
