"""Payouts to members and the member's own statement.

Invariants: a payout posts Dr member:<id> / Cr cash and never exceeds what the co-op owes the member
(checked under the ledger lock, so two concurrent payouts cannot both pass); a member's balance is
minus the sum of the postings on their account (credits are what we owe them). A statement shows
only the caller's own money.
"""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from coop.accounts.models import Account
from coop.accounts.roles import Role
from coop.kit.audit import record_audit
from coop.kit.errors import Conflict, NotFound
from coop.kit.timeutil import utcnow
from coop.ledger.chart import CASH, member_account_code
from coop.ledger.journal import lock_ledger, member_balance, post_entry
from coop.ledger.models import Dividend, DividendAllocation, Payout
from coop.ledger.schemas import PayoutPublic, StatementDividend, StatementPublic

KIND_PAYOUT = "payout"


def payout_public(payout: Payout) -> PayoutPublic:
    return PayoutPublic(payout_id=payout.id, member_id=payout.member_id, amount_pence=payout.amount_pence,
                        reference=payout.reference, at=payout.at, ledger_seq=payout.ledger_seq)


def record_payout(session: Session, *, member_id: str, amount_pence: int, reference: str,
                  recorded_by: str) -> PayoutPublic:
    """Pay a member part or all of their balance; 404 unknown member, 409 above the balance."""
    if amount_pence <= 0:
        raise ValueError("a payout must be positive")
    member = session.get(Account, member_id)
    if member is None or Role.MEMBER.value not in member.roles:
        raise NotFound("no such member")
    lock_ledger(session)
    balance = member_balance(session, member_id)
    if amount_pence > balance:
        raise Conflict(f"payout of {amount_pence} pence exceeds the member's balance of {balance} pence")
    now = utcnow()
    payout = Payout(id=str(uuid.uuid4()), member_id=member_id, amount_pence=amount_pence, reference=reference,
                    at=now, recorded_by=recorded_by)
    entry = post_entry(session, kind=KIND_PAYOUT, at=now, memo=f"payout {payout.id} to member: {reference}",
                       postings=[(member_account_code(member_id), amount_pence), (CASH, -amount_pence)])
    payout.ledger_seq = entry.seq
    session.add(payout)
    record_audit(session, actor_id=recorded_by, action="member.payout", subject_type="account",
                 subject_id=member_id, detail={"payout_id": payout.id, "amount_pence": amount_pence,
                                               "ledger_seq": entry.seq})
    session.flush()
    return payout_public(payout)


def member_statement(session: Session, *, member_id: str) -> StatementPublic:
    """The member's balance, dividends (oldest period first) and payouts (oldest first)."""
    dividends = session.exec(
        select(Dividend, DividendAllocation)
        .join(DividendAllocation, col(DividendAllocation.dividend_id) == col(Dividend.id))
        .where(DividendAllocation.member_id == member_id)
        .order_by(col(Dividend.period_start))
    ).all()
    payouts = session.exec(select(Payout).where(Payout.member_id == member_id)
                           .order_by(col(Payout.at), col(Payout.id))).all()
    return StatementPublic(
        balance_pence=member_balance(session, member_id),
        dividends=[StatementDividend(dividend_id=dividend.id, period_start=dividend.period_start,
                                     period_end=dividend.period_end, amount_pence=allocation.amount_pence,
                                     contribution_units=allocation.contribution_units)
                   for dividend, allocation in dividends],
        payouts=[payout_public(payout) for payout in payouts],
    )
