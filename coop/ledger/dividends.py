"""Dividend declaration: the period's licence payments, split by the members' contribution units.

Invariants:
- Pool = licence payments received in [period_start, period_end) (UTC days). Weights = each member's
  contribution units in ready releases built in the same period.
- ``reserve_pence = floor(pool * reserve_bps / 10000)``, ``distributed_pence = pool - reserve_pence``;
  when no member contributed in the period the whole pool goes to the reserve (nobody to pay).
- Allocations are largest-remainder whole pence and sum exactly to ``distributed_pence``.
- One ledger entry: Dr licence-income (pool) / Cr reserve / Cr member:<id> per allocation (zero lines
  omitted); no entry when the pool is 0 (the period is still closed by the dividend row).
- Periods never overlap, and only a period that has ended may be declared (so no payment or release
  can later fall into a period already paid out). The ledger lock is held from the overlap check on.
- Erased members keep their allocation under their pseudonymous account id.
"""

from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, col, select

from coop.kit.audit import record_audit
from coop.kit.errors import Conflict, InvalidInput, NotFound
from coop.kit.pagination import keyset_page
from coop.kit.timeutil import utcnow
from coop.ledger import repository
from coop.ledger.allocation import allocate_largest_remainder
from coop.ledger.chart import LICENCE_INCOME, RESERVE, member_account_code
from coop.ledger.journal import lock_ledger, post_entry
from coop.ledger.models import Dividend, DividendAllocation
from coop.ledger.schemas import AllocationPublic, DividendPublic

KIND_DIVIDEND = "dividend"
BPS = 10_000


def dividend_public(dividend: Dividend) -> DividendPublic:
    return DividendPublic(dividend_id=dividend.id, period_start=dividend.period_start,
                          period_end=dividend.period_end, reserve_bps=dividend.reserve_bps,
                          pool_pence=dividend.pool_pence, reserve_pence=dividend.reserve_pence,
                          distributed_pence=dividend.distributed_pence, members=dividend.members,
                          ledger_seq=dividend.ledger_seq, declared_at=dividend.created_at)


def declare_dividend(session: Session, *, period_start: date, period_end: date, reserve_bps: int,
                     declared_by: str, today: date | None = None) -> DividendPublic:
    """Declare the dividend of one closed period (see the module docstring); 409 on overlap."""
    if period_end <= period_start:
        raise InvalidInput("period_end must be after period_start")
    if not 0 <= reserve_bps <= BPS:
        raise InvalidInput("reserve_bps must be between 0 and 10000")
    now = utcnow()
    if period_end > (today or now.date()):
        raise InvalidInput("the period has not ended yet: period_end (exclusive) may be today at the latest")
    lock_ledger(session)
    clash = repository.overlapping_dividend(session, start=period_start, end=period_end)
    if clash is not None:
        raise Conflict(f"the period overlaps dividend {clash.id} "
                       f"({clash.period_start} to {clash.period_end}, end exclusive)")
    pool = repository.payments_received(session, start=period_start, end=period_end)
    weights = repository.contribution_units(session, start=period_start, end=period_end)
    reserve = pool * reserve_bps // BPS if weights else pool
    distributed = pool - reserve
    shares = allocate_largest_remainder(distributed, weights)
    dividend = Dividend(id=str(uuid.uuid4()), period_start=period_start, period_end=period_end,
                        reserve_bps=reserve_bps, pool_pence=pool, reserve_pence=reserve,
                        distributed_pence=distributed, members=len(weights), declared_by=declared_by,
                        created_at=now)
    if pool > 0:
        postings = [(LICENCE_INCOME, pool)]
        if reserve:
            postings.append((RESERVE, -reserve))
        postings.extend((member_account_code(member_id), -shares[member_id])
                        for member_id in sorted(shares) if shares[member_id])
        entry = post_entry(session, kind=KIND_DIVIDEND, at=now, postings=postings,
                           memo=f"dividend {dividend.id} for {period_start} to {period_end} (end exclusive)")
        dividend.ledger_seq = entry.seq
    session.add(dividend)
    session.flush()
    if weights:
        session.execute(sa.insert(DividendAllocation), [
            {"dividend_id": dividend.id, "member_id": member_id, "contribution_units": weights[member_id],
             "amount_pence": shares[member_id]} for member_id in sorted(weights)
        ])
    record_audit(session, actor_id=declared_by, action="dividend.declare", subject_type="dividend",
                 subject_id=dividend.id, detail={"pool_pence": pool, "reserve_pence": reserve,
                                                 "distributed_pence": distributed, "members": len(weights)})
    session.flush()
    return dividend_public(dividend)


def get_dividend(session: Session, dividend_id: str) -> DividendPublic:
    dividend = session.get(Dividend, dividend_id)
    if dividend is None:
        raise NotFound("no such dividend")
    return dividend_public(dividend)


def list_allocations(session: Session, *, dividend_id: str, limit: int,
                     cursor: str | None) -> tuple[list[AllocationPublic], str | None]:
    """One page of a dividend's allocations, by member id."""
    if session.get(Dividend, dividend_id) is None:
        raise NotFound("no such dividend")
    query = select(DividendAllocation).where(DividendAllocation.dividend_id == dividend_id)
    rows, next_cursor = keyset_page(session, query, order=[col(DividendAllocation.member_id)], limit=limit,
                                    cursor=cursor)
    return [AllocationPublic(member_id=row.member_id, contribution_units=row.contribution_units,
                             amount_pence=row.amount_pence) for row in rows], next_cursor
