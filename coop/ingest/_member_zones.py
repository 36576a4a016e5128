"""Private loader of a member's privacy zones, opened under the member's data key.

Temporary: the consent domain is writing a ``member_zones`` service; this loader should be replaced by
it when the branches merge. Invariant: the geometry exists only in memory, never logged or returned.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from consent.models import PrivacyZone
from consent.zones import ZoneGeometry, open_zone
from coop.crypto import DataKey


def load_member_zones(session: Session, *, member_id: str, data_key: DataKey) -> list[ZoneGeometry]:
    """Every privacy zone of ``member_id``, decrypted."""
    rows = session.exec(select(PrivacyZone).where(col(PrivacyZone.member_id) == member_id)).all()
    return [open_zone(data_key, row.blob, zone_id=row.id) for row in rows]
