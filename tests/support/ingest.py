"""Helpers for the ingest tests: consented members, pauses, privacy zones, fresh pings, stored rows.

Consent is recorded the way the consent domain records it (an append-only ``consent_event`` row whose
latest state per purpose counts); zones are sealed with ``consent.zones.seal_zone``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlmodel import col, select

from consent.models import ConsentEvent, PrivacyZone
from consent.zones import ZoneGeometry, seal_zone
from coop.accounts.models import Account
from coop.accounts.roles import Role
from coop.accounts.service import data_key_for, member_key_for
from coop.ingest.codec import PingPayload, open_ping
from coop.ingest.models import Ping
from coop.kit.crypto import DataKey
from coop.kit.db import session_scope
from coop.kit.timeutil import rfc3339, utcnow
from migrations.seed import POLICY_VERSION
from tests.support.factories import Caller, make_account

LIVERPOOL = (53.40838, -2.99164)


def record_consent(app: FastAPI, member_id: str, *, state: str = "given",
                   purpose: str = "transport-planning", at: datetime | None = None) -> None:
    """Append a consent event (``given`` or ``withdrawn``) for one purpose."""
    with session_scope(app.state.engine) as session:
        session.add(ConsentEvent(id=str(uuid.uuid4()), member_id=member_id, purpose_code=purpose, state=state,
                                 policy_version=POLICY_VERSION, at=at or utcnow(), method="api",
                                 receipt_id=str(uuid.uuid4()), receipt={}, jws="test"))


def consenting_member(app: FastAPI, *, name: str = "Resident") -> Caller:
    member = make_account(app, Role.MEMBER, name=name)
    record_consent(app, member.account_id)
    return member


def set_paused(app: FastAPI, member_id: str, paused: bool) -> None:
    with session_scope(app.state.engine) as session:
        account = session.get(Account, member_id)
        assert account is not None
        account.collection_paused = paused
        session.add(account)


def member_secrets(app: FastAPI, member_id: str) -> tuple[int, DataKey]:
    """The member's number and unwrapped data key."""
    with session_scope(app.state.engine) as session:
        member_key = member_key_for(session, member_id)
        data_key = data_key_for(member_key, app.state.keyring)
        assert data_key is not None and member_key.no is not None
        return member_key.no, data_key


def add_zone(app: FastAPI, member_id: str, *, lat: float, lng: float, radius_m: float) -> ZoneGeometry:
    zone = ZoneGeometry(lat=lat, lng=lng, radius_m=radius_m, label="home")
    _no, data_key = member_secrets(app, member_id)
    zone_id = str(uuid.uuid4())
    with session_scope(app.state.engine) as session:
        session.add(PrivacyZone(id=zone_id, member_id=member_id, blob=seal_zone(data_key, zone, zone_id=zone_id),
                                created_at=utcnow()))
    return zone


def ping(client_id: str, *, minutes_ago: float = 10, lat: float = LIVERPOOL[0], lng: float = LIVERPOOL[1],
         **fields: Any) -> dict[str, Any]:
    """A valid native ping (``fields`` override or add to it)."""
    body: dict[str, Any] = {"id": client_id, "ts": rfc3339(utcnow() - timedelta(minutes=minutes_ago)),
                            "lat": lat, "lng": lng}
    body.update(fields)
    return body


@dataclass(frozen=True)
class StoredPing:
    client_id: str
    ts_ms: int
    cell: int
    blob: bytes
    payload: PingPayload


def stored_pings(app: FastAPI, member_id: str) -> dict[str, StoredPing]:
    """The member's stored pings by client id, decrypted with the member's key."""
    member_no, data_key = member_secrets(app, member_id)
    with session_scope(app.state.engine) as session:
        rows = session.exec(select(Ping).where(col(Ping.member_no) == member_no)).all()
        return {row.client_id: StoredPing(row.client_id, row.ts_ms, row.cell, row.blob,
                                          open_ping(data_key, row.blob, member_no=member_no,
                                                    client_id=row.client_id))
                for row in rows}


def count_all_pings(app: FastAPI) -> int:
    with session_scope(app.state.engine) as session:
        return len(session.exec(select(Ping.id)).all())
