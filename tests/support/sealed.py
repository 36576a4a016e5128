"""Small typed factories for release tests: a table family and sealed buckets written straight to the
tables, so a test states exactly which sealed rows a release must select. (End-to-end tests seal real
pings through the tables domain instead.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import h3
from fastapi import FastAPI
from sqlmodel import Session, select

from aggregation.periods import TimeBucket
from coop.kit.db import session_scope
from coop.kit.timeutil import date_start, utcnow
from coop.tables.models import SealedBucket, SealedCell, SealedContribution, TableFamily

TRANSPORT = "transport-planning"
MECHANISM = "discrete-gaussian-zcdp (OpenDP 0.16)"


def make_family(app: FastAPI, *, purpose: str = TRANSPORT, time_bucket: str = "hour", resolution: int = 9,
                kind: str = "presence", tau: int = 2, epsilon_per_day: float = 0.5,
                contribution_bound: int | None = None, seal_from: date = date(2026, 11, 2)) -> str:
    """An open family with the given public parameters (sigma is nominal: nothing is sealed here)."""
    family_id = str(uuid.uuid4())
    bound = contribution_bound or TimeBucket(time_bucket).cells_per_member
    with session_scope(app.state.engine) as session:
        session.add(TableFamily(id=family_id, kind=kind, purpose_code=purpose, time_bucket=time_bucket,
                                resolution=resolution, epsilon_per_day=epsilon_per_day, delta=1e-7,
                                k_floor=2, tau=tau, sigma=3.0, contribution_bound=bound,
                                coarsest_resolution=7, mechanism=MECHANISM, opened_at=utcnow(),
                                opened_by_licence_id=None, seal_from=seal_from))
    return family_id


def _seal(session: Session, family_id: str, *, start: datetime, time_bucket: str,
          cells: Iterable[tuple[str, int]], inputs: Iterable[str]) -> None:
    length = timedelta(milliseconds=TimeBucket(time_bucket).length_ms)
    session.add(SealedBucket(family_id=family_id, bucket_start=start, bucket_end=start + length,
                             sealed_at=utcnow()))
    for cell, members in cells:
        session.add(SealedCell(family_id=family_id, bucket_start=start, resolution=h3.get_resolution(cell),
                               cell=h3.str_to_int(cell), members=members))
    day = start.date()
    for member_id in inputs:
        row = session.exec(select(SealedContribution).where(
            SealedContribution.family_id == family_id, SealedContribution.member_id == member_id,
            SealedContribution.day == day)).first()
        if row is None:
            row = SealedContribution(family_id=family_id, member_id=member_id, day=day, buckets=0)
        row.buckets += 1
        session.add(row)
        session.flush()


def seal_bucket(app: FastAPI, family_id: str, *, start: datetime, time_bucket: str = "hour",
                cells: Iterable[tuple[str, int]] = (), inputs: Iterable[str] = ()) -> None:
    """Seal one bucket: its published ``(H3 cell, members)`` rows and the members (account ids) whose
    data was input (each gets one more bucket on the bucket's UTC day)."""
    with session_scope(app.state.engine) as session:
        _seal(session, family_id, start=start, time_bucket=time_bucket, cells=cells, inputs=inputs)


def seal_period(app: FastAPI, family_id: str, *, start: date, end: date, time_bucket: str = "hour",
                skip: Iterable[datetime] = ()) -> None:
    """Seal every bucket of ``[start, end)`` not in ``skip``, empty (nothing published, no input)."""
    step = timedelta(milliseconds=TimeBucket(time_bucket).length_ms)
    moment, finish = date_start(start), date_start(end)
    skipped = set(skip)
    with session_scope(app.state.engine) as session:
        while moment < finish:
            if moment not in skipped:
                _seal(session, family_id, start=moment, time_bucket=time_bucket, cells=(), inputs=())
            moment += step
