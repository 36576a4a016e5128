"""Queries of the ledger domain (read-only; writes go through ``coop.ledger.journal.post_entry``)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, col, select

from coop.accounts.models import MemberKey
from coop.kit.timeutil import date_start
from coop.ledger.models import Dividend, LedgerPosting
from coop.licensing.models import LicencePayment
from coop.releases.models import Release, ReleaseContribution

READY = "ready"


def balances(session: Session, codes: list[str]) -> dict[str, int]:
    """Debits minus credits of each account in ``codes`` (0 when it has no postings)."""
    if not codes:
        return {}
    rows = session.exec(
        select(LedgerPosting.account_code, sa.func.sum(LedgerPosting.amount_pence))
        .where(col(LedgerPosting.account_code).in_(codes))
        .group_by(col(LedgerPosting.account_code))
    ).all()
    found = {code: int(total) for code, total in rows}
    return {code: found.get(code, 0) for code in codes}


def payments_received(session: Session, *, start: date, end: date) -> int:
    """Licence payments with ``received_at`` in [start, end) (UTC days), in pence."""
    total = session.exec(
        select(sa.func.coalesce(sa.func.sum(LicencePayment.amount_pence), 0))
        .where(col(LicencePayment.received_at) >= date_start(start),
               col(LicencePayment.received_at) < date_start(end))
    ).one()
    return int(total)


def contribution_units(session: Session, *, start: date, end: date) -> dict[str, int]:
    """Each member's contribution units over ready releases built in [start, end), by account id."""
    rows = session.exec(
        select(MemberKey.account_id, sa.func.sum(ReleaseContribution.units))
        .join(Release, col(Release.id) == col(ReleaseContribution.release_id))
        .join(MemberKey, col(MemberKey.no) == col(ReleaseContribution.member_no))
        .where(Release.status == READY,
               col(Release.built_at) >= date_start(start), col(Release.built_at) < date_start(end))
        .group_by(col(MemberKey.account_id))
    ).all()
    return {account_id: int(units) for account_id, units in rows if units and int(units) > 0}


def overlapping_dividend(session: Session, *, start: date, end: date) -> Dividend | None:
    """A declared dividend whose period overlaps [start, end), if any."""
    return session.exec(
        select(Dividend).where(col(Dividend.period_start) < end, col(Dividend.period_end) > start).limit(1)
    ).first()
