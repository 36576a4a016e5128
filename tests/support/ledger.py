"""Small typed factories for ledger tests: licences, releases with contributions, payments, tampering.

Licences and releases are built by other domains; these factories insert just the rows the ledger
reads, directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from coop.accounts.models import MemberKey
from coop.accounts.roles import Role
from coop.kit.db import session_scope
from coop.kit.timeutil import utcnow
from coop.ledger.guard import append_only_guards_lifted
from coop.ledger.schemas import EntryPublic
from coop.ledger.service import receive_licence_payment
from coop.licensing.models import Licence, LicenceRequest
from coop.releases.models import Release, ReleaseContribution
from tests.support.factories import Caller, make_account

DATASET: dict[str, Any] = {"resolution": 9, "time_bucket": "day", "start": "2026-01-01", "end": "2026-02-01",
                           "region": None, "k": 2}


def days_ago(days: int) -> date:
    return utcnow().date() - timedelta(days=days)


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12, 0), tzinfo=UTC)


def make_licence(app: FastAPI, *, fee_pence: int, licensee: Caller | None = None) -> str:
    """An approved licence (request + licence rows) with ``fee_pence``; returns the licence id."""
    licensee = licensee or make_account(app, Role.MODELLER, name="Modeller", organisation="Transport Lab")
    now = utcnow()
    request_id, licence_id = str(uuid.uuid4()), str(uuid.uuid4())
    with session_scope(app.state.engine) as session:
        session.add(LicenceRequest(
            id=request_id, requester_id=licensee.account_id, title="Bus demand", purpose_code="transport-planning",
            organisation="Transport Lab", public_benefit="Better buses", description="Hourly demand",
            dataset=DATASET, duration_days=365, fee_pence=fee_pence, status="approved", created_at=now,
            decided_at=now))
        session.flush()
        session.add(Licence(
            id=licence_id, request_id=request_id, licensee_id=licensee.account_id, organisation="Transport Lab",
            purpose_code="transport-planning", dataset=DATASET, k=2, fee_pence=fee_pence,
            valid_from=now - timedelta(days=400), valid_until=now + timedelta(days=365), terms_version="2026-11",
            document={}, jws="x.y.z", created_at=now))
    return licence_id


def pay_licence(app: FastAPI, *, licence_id: str, amount_pence: int, received_at: datetime,
                recorded_by: str) -> EntryPublic:
    """A licence payment received at ``received_at`` (the API always uses "now")."""
    with session_scope(app.state.engine) as session:
        return receive_licence_payment(session, licence_id=licence_id, amount_pence=amount_pence,
                                       reference="BACS test", recorded_by=recorded_by, received_at=received_at)


def make_release(app: FastAPI, *, licence_id: str, requested_by: str, built_at: datetime | None,
                 units: Mapping[str, int], status: str = "ready") -> str:
    """A release under ``licence_id`` counting each member (account id) with the given units."""
    release_id = str(uuid.uuid4())
    with session_scope(app.state.engine) as session:
        session.add(Release(id=release_id, licence_id=licence_id, requested_by=requested_by,
                            start=date(2026, 1, 1), end=date(2026, 1, 2), status=status,
                            progress=1.0 if status == "ready" else 0.0, created_at=built_at or utcnow(),
                            built_at=built_at))
        session.flush()
        numbers = dict(session.exec(select(MemberKey.account_id, MemberKey.no)
                                    .where(col(MemberKey.account_id).in_(list(units)))).all())
        for account_id, count in units.items():
            member_no = numbers[account_id]
            assert member_no is not None
            session.add(ReleaseContribution(release_id=release_id, member_no=member_no, units=count))
    return release_id


def tamper(engine: Engine, statement: str, **params: Any) -> None:
    """Run one raw UPDATE/DELETE on ledger rows with the append-only triggers lifted (as an attacker would)."""
    with engine.begin() as connection, append_only_guards_lifted(connection):
        connection.execute(sa.text(statement), params)
