"""Small typed factories for release tests: consent events, pings and licences written straight to the
tables (the consent, ingest and licensing APIs are built elsewhere; the log semantics are the same)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import h3
from fastapi import FastAPI
from sqlmodel import select

from consent.models import ConsentEvent
from coop.accounts.models import Account, MemberKey
from coop.accounts.roles import Role
from coop.ingest.models import Ping
from coop.kit.db import session_scope
from coop.kit.timeutil import utcnow
from coop.licensing.models import Licence, LicenceRequest
from tests.support.factories import Caller, make_account

TRANSPORT = "transport-planning"
LIVERPOOL = (53.4084, -2.9916)


def ts_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def cell10(lat: float = LIVERPOOL[0], lng: float = LIVERPOOL[1]) -> str:
    return str(h3.latlng_to_cell(lat, lng, 10))


def inside(cell: str) -> str:
    """A resolution-10 cell inside ``cell`` (its centre child), where a ping can be placed."""
    resolution = h3.get_resolution(cell)
    return cell if resolution == 10 else h3.cell_to_center_child(cell, 10)


def siblings(cell: str) -> list[str]:
    """``cell``'s siblings (same parent), ``cell`` first, the others by id."""
    parent = h3.cell_to_parent(cell, h3.get_resolution(cell) - 1)
    return [cell, *sorted(c for c in h3.cell_to_children(parent) if c != cell)]


@dataclass(frozen=True)
class Member:
    caller: Caller
    no: int

    @property
    def account_id(self) -> str:
        return self.caller.account_id


def make_member(app: FastAPI, *, name: str = "Resident") -> Member:
    caller = make_account(app, Role.MEMBER, name=name)
    with session_scope(app.state.engine) as session:
        no = session.exec(select(MemberKey.no).where(MemberKey.account_id == caller.account_id)).one()
    assert no is not None
    return Member(caller=caller, no=no)


def consent_event(app: FastAPI, member: Member, *, at: datetime, given: bool = True,
                  purpose: str = TRANSPORT) -> None:
    state = "given" if given else "withdrawn"
    with session_scope(app.state.engine) as session:
        receipt_id = str(uuid.uuid4())
        session.add(ConsentEvent(id=str(uuid.uuid4()), member_id=member.account_id, purpose_code=purpose,
                                 state=state, policy_version="1", at=at, method="api", receipt_id=receipt_id,
                                 receipt={"record_id": receipt_id, "event_type": state}, jws="unsigned.test.jws"))


def pings(app: FastAPI, member: Member, located: Iterable[tuple[datetime, str]]) -> None:
    """Store pings of ``member`` at (time, H3 cell of any resolution: a ping goes in its centre child)."""
    with session_scope(app.state.engine) as session:
        for moment, cell in located:
            session.add(Ping(member_no=member.no, client_id=str(uuid.uuid4()), ts_ms=ts_ms(moment),
                             cell=h3.str_to_int(inside(cell)), blob=b"\x00" * 32))


def erase(app: FastAPI, member: Member) -> None:
    """What erasure leaves behind that the builder must honour: erased_at set, data key shredded."""
    with session_scope(app.state.engine) as session:
        account = session.get(Account, member.account_id)
        key = session.exec(select(MemberKey).where(MemberKey.no == member.no)).one()
        assert account is not None
        account.erased_at = key.shredded_at = utcnow()
        key.wrapped_key = None
        session.add_all([account, key])


def make_licence(app: FastAPI, licensee: Caller, *, start: date, end: date, resolution: int = 9,
                 time_bucket: str = "hour", k: int = 2, region: dict[str, Any] | None = None,
                 purpose: str = TRANSPORT, fee_pence: int = 0, paid_pence: int = 0,
                 revoked: bool = False, valid_until: datetime | None = None,
                 family_id: str | None = None) -> str:
    """An issued licence (and its approved request) for ``licensee``, reading ``family_id``'s sealed
    tables; returns the licence id."""
    dataset = {"resolution": resolution, "time_bucket": time_bucket, "start": start.isoformat(),
               "end": end.isoformat(), "region": region, "k": k}
    now = utcnow()
    with session_scope(app.state.engine) as session:
        request = LicenceRequest(id=str(uuid.uuid4()), requester_id=licensee.account_id, title="Bus model",
                                 purpose_code=purpose, organisation="Merseytravel Analytics",
                                 public_benefit="Better buses", description="Hourly flows", dataset=dataset,
                                 duration_days=365, fee_pence=fee_pence, status="approved", created_at=now,
                                 decided_at=now)
        session.add(request)
        session.flush()
        licence = Licence(id=str(uuid.uuid4()), request_id=request.id, licensee_id=licensee.account_id,
                          organisation="Merseytravel Analytics", purpose_code=purpose, dataset=dataset, k=k,
                          fee_pence=fee_pence, paid_pence=paid_pence,
                          revoked_at=now if revoked else None, revoke_reason="misuse" if revoked else None,
                          valid_from=now - timedelta(days=1),
                          valid_until=valid_until or now + timedelta(days=365), terms_version="2026-11",
                          document={"licence": "test"}, jws="unsigned.test.jws", created_at=now,
                          family_id=family_id)
        session.add(licence)
        return licence.id


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
