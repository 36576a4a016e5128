"""A sealing backlog written straight into a database (no app): members, consent, an hourly family and
a week of pings, for tests that run ``coop seal`` in a subprocess against a scratch database."""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import h3
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from coop.kit.settings import Settings
from coop.tables.families import FamilyKey, new_family
from tests.support.releases import cell10, siblings

HOUR_MS = 3_600_000


def store_hourly_backlog(engine: Engine, *, members: int, days: int, start: date) -> tuple[str, dict[str, int]]:
    """Returns the family id and, per member id, how many hour buckets their pings fall in."""
    cells = [h3.str_to_int(h3.cell_to_center_child(cell, 10)) for cell in siblings(h3.cell_to_parent(cell10(), 9))]
    now = datetime.now(UTC)
    start_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * 1000
    metadata = sa.MetaData()
    metadata.reflect(engine, only=["account", "member_key", "consent_event", "table_family", "ping"])
    table = metadata.tables
    ids = [str(uuid.uuid4()) for _ in range(members)]
    family = new_family(key=FamilyKey(kind="presence", purpose_code="transport-planning", time_bucket="hour",
                                      resolution=9),
                        epsilon_per_day=1e9, settings=Settings(k_floor=2), at=now, seal_from=start, licence_id=None)
    pings, hours = [], defaultdict(set)
    for no, member_id in enumerate(ids, start=1):
        for hour in range(days * 24):
            if (no + hour) % 3 == 0:
                continue  # a third of the hours without pings
            for minute in (5, 35):
                pings.append({"member_no": no, "client_id": f"{no}-{hour}-{minute}",
                              "ts_ms": start_ms + hour * HOUR_MS + minute * 60_000,
                              "cell": cells[(no + hour) % 3], "blob": b"\x00" * 16})
            hours[member_id].add(hour)
    with engine.begin() as connection:
        connection.execute(table["account"].insert(), [
            {"id": member_id, "display_name": None, "organisation": None, "roles": ["member"], "created_at": now,
             "terms_version": "2026-11", "collection_paused": False, "erased_at": None, "verified_at": now}
            for member_id in ids])
        connection.execute(table["member_key"].insert(), [
            {"no": no, "account_id": member_id, "wrapped_key": os.urandom(60), "created_at": now, "shredded_at": None}
            for no, member_id in enumerate(ids, start=1)])
        connection.execute(table["consent_event"].insert(), [
            {"id": str(uuid.uuid4()), "member_id": member_id, "purpose_code": "transport-planning", "state": "given",
             "policy_version": "1", "at": now - timedelta(days=days + 30), "method": "api",
             "receipt_id": str(uuid.uuid4()), "receipt": {}, "jws": "test"} for member_id in ids])
        connection.execute(table["table_family"].insert(), [family.model_dump()])
        connection.execute(table["ping"].insert(), pings)
    return family.id, {member_id: len(found) for member_id, found in hours.items()}
