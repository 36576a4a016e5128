"""Creating a privacy zone: a flow across consent (the zone) and ingest (the pings inside it).

Invariant: the zone and the purge of the member's stored pings inside it commit together (one
session, one transaction), so no stored ping of the member ever lies inside one of their zones.
"""

from __future__ import annotations

from sqlmodel import Session

from consent.privacy_zones import store_zone
from consent.schemas import PrivacyZoneCreated
from consent.zones import ZoneGeometry
from coop.ingest.service import delete_pings_in_zone
from coop.kit.audit import record_audit
from coop.kit.crypto import Keyring


def create_zone_and_purge(session: Session, *, member_id: str, keyring: Keyring,
                          zone: ZoneGeometry) -> PrivacyZoneCreated:
    """Store ``zone`` for the member and delete their stored pings inside it; the answer says how many."""
    stored = store_zone(session, member_id=member_id, keyring=keyring, zone=zone)
    deleted = delete_pings_in_zone(session, member_no=stored.member_no, zone=zone, data_key=stored.data_key)
    record_audit(session, actor_id=member_id, action="privacy_zone.created", subject_type="privacy_zone",
                 subject_id=stored.row.id, detail={"pings_deleted": deleted})
    session.flush()
    return stored.present(pings_deleted=deleted)
