"""Helpers for sealed-table tests: licences approved through the API, sealing at a chosen instant, and
the sealed rows and contributions read back as plain tuples."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import h3
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import col

from coop.accounts.models import Role
from coop.kit.db import session_scope
from coop.tables.models import SealedBucket, SealedCell, SealedContribution
from coop.tables.sealing import FamilySealed, seal_due
from tests.support.factories import Caller, make_account
from tests.support.licensing import board_members, submit, vote

MONDAY = date(2026, 11, 2)
SEAL_NOW = datetime(2026, 11, 30, tzinfo=UTC)
"""Far enough after the test weeks that every bucket of them is due (lateness 48 h)."""

CellRow = tuple[str, str, int, int]
"""(bucket_start RFC 3339, H3 cell string, resolution, members)."""


def dataset(*, start: date = MONDAY, days: int = 7, time_bucket: str = "day", resolution: int = 9,
            **extra: Any) -> dict[str, Any]:
    return {"time_bucket": time_bucket, "resolution": resolution, "start": start.isoformat(),
            "end": (start + timedelta(days=days)).isoformat(), "region": None, **extra}


def approve(client: TestClient, app: FastAPI, modeller: Caller, board: list[Caller] | None = None,
            **overrides: Any) -> dict[str, Any]:
    """Submit a request by ``modeller`` and vote it through; the licence as served to the modeller."""
    request = submit(client, modeller, **overrides)
    voters = board or board_members(app, 2)
    for voter in voters[:2]:
        response = vote(client, voter, request["request_id"], "approve")
        assert response.status_code == 201, response.text
    licence_id = client.get(f"/v1/licence-requests/{request['request_id']}",
                            headers=voters[0].headers).json()["licence_id"]
    licence: dict[str, Any] = client.get(f"/v1/licences/{licence_id}", headers=modeller.headers).json()
    return licence


def modeller(app: FastAPI, name: str = "Modeller") -> Caller:
    return make_account(app, Role.MODELLER, name=name)


def seal(app: FastAPI, now: datetime = SEAL_NOW) -> list[FamilySealed]:
    return seal_due(app.state.engine, app.state.settings, now=now)


def _rfc3339(moment: datetime) -> str:
    value = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cell_rows(app: FastAPI, family_id: str) -> list[CellRow]:
    """Every sealed cell of the family, sorted as releases sort them."""
    with session_scope(app.state.engine) as session:
        rows = session.execute(sa.select(col(SealedCell.bucket_start), col(SealedCell.cell),
                                         col(SealedCell.resolution), col(SealedCell.members))
                               .where(col(SealedCell.family_id) == family_id)).all()
    found = [(_rfc3339(start), h3.int_to_str(cell), resolution, members) for start, cell, resolution, members in rows]
    return sorted(found, key=lambda row: (row[0], -row[2], h3.str_to_int(row[1])))


def sealed_buckets(app: FastAPI, family_id: str) -> list[str]:
    with session_scope(app.state.engine) as session:
        starts = session.execute(sa.select(col(SealedBucket.bucket_start))
                                 .where(col(SealedBucket.family_id) == family_id)).scalars().all()
    return sorted(_rfc3339(start) for start in starts)


def contributions(app: FastAPI, family_id: str) -> dict[tuple[str, str], int]:
    """(member_id, day ISO) -> buckets."""
    with session_scope(app.state.engine) as session:
        rows = session.execute(sa.select(col(SealedContribution.member_id), col(SealedContribution.day),
                                         col(SealedContribution.buckets))
                               .where(col(SealedContribution.family_id) == family_id)).all()
    return {(member_id, day.isoformat()): buckets for member_id, day, buckets in rows}
