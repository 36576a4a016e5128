"""Privacy zones: circles where a member's pings are never stored.

Invariants: a zone's centre, radius and label are stored only sealed under the member's own data key
(``consent.zones.seal_zone``); the row holds just the id, owner and creation time. A member sees and
deletes only their own zones (anyone else's is a 404). A member holds at most ``MAX_ZONES_PER_MEMBER``
zones, so the ingest check stays cheap. Audit entries name the zone id only, never its geometry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from consent.identifiers import looks_like_uuid
from consent.models import PrivacyZone
from consent.schemas import PrivacyZoneCreated, PrivacyZonePublic
from consent.zones import ZoneGeometry, open_zone, seal_zone
from coop.accounts.models import MemberKey
from coop.accounts.service import data_key_for, member_key_for
from coop.kit.audit import record_audit
from coop.kit.crypto import DataKey, Keyring
from coop.kit.errors import Conflict, NotFound
from coop.kit.pagination import Page, keyset_page
from coop.kit.timeutil import utcnow

MAX_ZONES_PER_MEMBER = 50


def _member_keys(session: Session, *, member_id: str, keyring: Keyring) -> tuple[MemberKey, DataKey]:
    """The member's key row and unwrapped data key; 404 once the key has been destroyed."""
    member_key = member_key_for(session, member_id)
    data_key = data_key_for(member_key, keyring)
    if data_key is None:
        raise NotFound("this member's data key has been destroyed")
    return member_key, data_key


def _present(row: PrivacyZone, zone: ZoneGeometry) -> PrivacyZonePublic:
    return PrivacyZonePublic(zone_id=row.id, lat=zone.lat, lng=zone.lng, radius_m=zone.radius_m,
                             label=zone.label, created_at=row.created_at)


@dataclass(frozen=True)
class StoredZone:
    """A zone just stored, with what a caller needs to purge the member's pings inside it."""

    row: PrivacyZone
    zone: ZoneGeometry
    member_no: int
    data_key: DataKey

    def present(self, *, pings_deleted: int) -> PrivacyZoneCreated:
        return PrivacyZoneCreated(**_present(self.row, self.zone).model_dump(), pings_deleted=pings_deleted)


def store_zone(session: Session, *, member_id: str, keyring: Keyring, zone: ZoneGeometry) -> StoredZone:
    """Store a new zone sealed under the member's data key (409 beyond ``MAX_ZONES_PER_MEMBER``).

    Purging the member's stored pings inside it is the caller's part (``coop.rights.zones``), so that
    consent never reaches into ingest.
    """
    member_key, data_key = _member_keys(session, member_id=member_id, keyring=keyring)
    assert member_key.no is not None
    count = session.exec(select(func.count()).select_from(PrivacyZone)
                         .where(PrivacyZone.member_id == member_id)).one()
    if count >= MAX_ZONES_PER_MEMBER:
        raise Conflict(f"a member may hold at most {MAX_ZONES_PER_MEMBER} privacy zones; delete one first")
    zone_id = str(uuid.uuid4())
    row = PrivacyZone(id=zone_id, member_id=member_id, blob=seal_zone(data_key, zone, zone_id=zone_id),
                      created_at=utcnow())
    session.add(row)
    session.flush()
    return StoredZone(row=row, zone=zone, member_no=member_key.no, data_key=data_key)


def list_zones(session: Session, *, member_id: str, keyring: Keyring, limit: int,
               cursor: str | None) -> Page[PrivacyZonePublic]:
    """One page of the member's zones, decrypted, oldest first."""
    query = select(PrivacyZone).where(PrivacyZone.member_id == member_id)
    rows, next_cursor = keyset_page(session, query, order=[col(PrivacyZone.created_at), col(PrivacyZone.id)],
                                    limit=limit, cursor=cursor)
    if not rows:
        return Page(items=[], next_cursor=next_cursor)
    _member_key, data_key = _member_keys(session, member_id=member_id, keyring=keyring)
    items = [_present(row, open_zone(data_key, row.blob, zone_id=row.id)) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


def delete_zone(session: Session, *, member_id: str, zone_id: str) -> None:
    """Delete one of the member's zones; an unknown id or another member's zone is a 404."""
    row = session.get(PrivacyZone, zone_id) if looks_like_uuid(zone_id) else None
    if row is None or row.member_id != member_id:
        raise NotFound("no such privacy zone")
    session.delete(row)
    record_audit(session, actor_id=member_id, action="privacy_zone.deleted", subject_type="privacy_zone",
                 subject_id=zone_id)
    session.flush()


def delete_member_zones(session: Session, *, member_id: str) -> int:
    """Delete every zone of the member (erasure); returns how many there were."""
    rows = session.exec(select(PrivacyZone).where(PrivacyZone.member_id == member_id)).all()
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


_ZONES = PrivacyZone.__table__  # type: ignore[attr-defined]
# Built once: ingest runs this for every batch.
_ZONES_OF_MEMBER = (sa.select(_ZONES.c.id, _ZONES.c.blob)
                    .where(_ZONES.c.member_id == sa.bindparam("member_id"))
                    .order_by(_ZONES.c.created_at, _ZONES.c.id))


def open_member_zones(session: Session, *, member_id: str, data_key: DataKey) -> list[ZoneGeometry]:
    """Every zone of the member, opened with their (already unwrapped) data key: the ingest filter."""
    rows = session.connection().execute(_ZONES_OF_MEMBER, {"member_id": member_id}).all()
    return [open_zone(data_key, bytes(blob), zone_id=zone_id) for zone_id, blob in rows]


def member_zones(session: Session, *, member_id: str, keyring: Keyring) -> list[ZoneGeometry]:
    """Every zone of the member, decrypted; none once the data key is destroyed."""
    data_key = data_key_for(member_key_for(session, member_id), keyring)
    if data_key is None:
        return []
    return open_member_zones(session, member_id=member_id, data_key=data_key)
