"""Private loader of a member's privacy zones, opened under the member's data key.

Temporary: the consent domain is writing a ``member_zones`` service; this loader should be replaced by
it when the branches merge. Invariant: the geometry exists only in memory, never logged or returned.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from consent.models import PrivacyZone
from consent.zones import ZoneGeometry, open_zone
from coop.crypto import DataKey

_ZONES = PrivacyZone.__table__  # type: ignore[attr-defined]
# Built once: the ingest hot path runs this for every batch.
_ZONES_OF_MEMBER = sa.select(_ZONES.c.id, _ZONES.c.blob).where(_ZONES.c.member_id == sa.bindparam("member_id"))


def load_member_zones(session: Session, *, member_id: str, data_key: DataKey) -> list[ZoneGeometry]:
    """Every privacy zone of ``member_id``, decrypted."""
    rows = session.connection().execute(_ZONES_OF_MEMBER, {"member_id": member_id}).all()
    return [open_zone(data_key, bytes(blob), zone_id=zone_id) for zone_id, blob in rows]
