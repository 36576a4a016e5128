"""Sealing: every due bucket of every open family is computed once, from one snapshot, and kept.

Invariants:
- A chunk (one bucket; for hour families the due hours of one UTC day) is read in one snapshot
  transaction (eligibility and pings judged at one instant, ingest never blocked), sealed in memory,
  then written in ONE transaction: its ``sealed_bucket`` rows first, then its cells or pairs, then the
  ``sealed_contribution`` increments. Nothing is visible before that commit, so a crash anywhere leaves
  the chunk unsealed (it is redone, with fresh noise, by the next pass: no number was ever published).
- Once sealed, never again: a chunk whose buckets are already sealed is skipped, and when two sealers
  race, the ``sealed_bucket`` primary key lets one commit and the other rolls back and skips.
- Memory is one chunk at a time; pings stored after their bucket was sealed are never aggregated.
- What is reported or logged names buckets and families, never how many people gave input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from aggregation.dp import NoisePlan
from coop.kit.db import is_sqlite, read_snapshot, session_scope
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.tables.buckets import Chunk, chunks, contribution_day, due_buckets, epoch_ms
from coop.tables.families import list_families
from coop.tables.inputs import eligible_members, snapshot
from coop.tables.kinds import SEALERS, ChunkInput, SealedChunk
from coop.tables.models import SealedBucket, SealedCell, SealedContribution, SealedPair, TableFamily
from coop.tables.plans import family_plan
from coop.tables.reading import sealed_through

log = logging.getLogger("coop.tables")


@dataclass(frozen=True)
class FamilySealed:
    """What one pass sealed for one family (no counts of people)."""

    family_id: str
    kind: str
    purpose_code: str
    time_bucket: str
    resolution: int
    buckets_sealed: int
    first: datetime | None
    """The start of the first bucket this pass sealed (None: it sealed nothing)."""
    sealed_through: datetime | None
    """The family's ``sealed_through`` after the pass."""


def due_through(settings: Settings, now: datetime) -> datetime:
    """Buckets that ended at or before this instant are due."""
    return now - timedelta(hours=settings.seal_lateness_hours)


def _sealed_starts(engine: Engine, family_id: str) -> list[datetime]:
    with read_snapshot(engine) as session:
        return list(session.exec(select(SealedBucket.bucket_start).where(SealedBucket.family_id == family_id)))


def _read_chunk(engine: Engine, settings: Settings, family: TableFamily, plan: NoisePlan,
                chunk: Chunk) -> tuple[SealedChunk, dict[int, str]]:
    lo_ms, hi_ms = epoch_ms(chunk.start), epoch_ms(chunk.end)
    with snapshot(engine) as connection:
        eligible = eligible_members(connection, purpose_code=family.purpose_code, settings=settings,
                                    lo_ms=lo_ms, hi_ms=hi_ms)
        sealed = SEALERS[family.kind](ChunkInput(connection=connection, eligible=eligible, plan=plan,
                                                 resolution=family.resolution, lo_ms=lo_ms, hi_ms=hi_ms,
                                                 length_ms=chunk.length // timedelta(milliseconds=1)))
    return sealed, eligible.account_ids


def _with_starts(frame: pl.DataFrame, chunk: Chunk) -> list[dict[str, Any]]:
    """Rows with ``bucket`` (index in the chunk) replaced by ``bucket_start``."""
    rows = frame.to_dicts()
    for row in rows:
        row["bucket_start"] = chunk.starts[row.pop("bucket")]
    return rows


def insert_rows(session: Session, family: TableFamily, chunk: Chunk, sealed: SealedChunk, *,
                sealed_at: datetime) -> None:
    """The chunk's ``sealed_bucket`` rows (IntegrityError if another sealer got there first), then its
    cells and pairs."""
    session.execute(sa.insert(SealedBucket), [
        {"family_id": family.id, "bucket_start": start, "bucket_end": start + chunk.length, "sealed_at": sealed_at}
        for start in chunk.starts])
    cells = [{"family_id": family.id, **row} for row in _with_starts(sealed.cells, chunk)]
    if cells:
        session.execute(sa.insert(SealedCell), cells)
    pairs = [{"family_id": family.id, **row} for row in _with_starts(sealed.pairs, chunk)]
    if pairs:
        session.execute(sa.insert(SealedPair), pairs)


def upsert_contributions(session: Session, family: TableFamily, chunk: Chunk, contributors: pl.DataFrame,
                         account_ids: dict[int, str]) -> None:
    """Add each contributor's buckets of the chunk to their (family, member, day) line."""
    days = [contribution_day(family.time_bucket, start) for start in chunk.starts]
    per_day = (contributors.unique()
               .with_columns(pl.col("bucket").replace_strict(list(range(len(days))), days, return_dtype=pl.Date)
                             .alias("day"))
               .group_by("member_no", "day").agg(pl.len().alias("buckets")))
    values = [{"family_id": family.id, "member_id": account_ids[member_no], "day": day, "buckets": buckets}
              for member_no, day, buckets in per_day.iter_rows()]
    if not values:
        return
    dialect = sqlite if is_sqlite(str(session.get_bind().engine.url)) else postgresql
    statement = dialect.insert(SealedContribution)
    statement = statement.on_conflict_do_update(
        index_elements=["family_id", "member_id", "day"],
        set_={"buckets": col(SealedContribution.buckets) + statement.excluded.buckets})
    session.execute(statement, values)


def write_chunk(engine: Engine, family: TableFamily, chunk: Chunk, sealed: SealedChunk,
                account_ids: dict[int, str], *, sealed_at: datetime) -> bool:
    """Seal the chunk in one transaction; False when another sealer sealed (part of) it first."""
    try:
        with session_scope(engine) as session:
            insert_rows(session, family, chunk, sealed, sealed_at=sealed_at)
            upsert_contributions(session, family, chunk, sealed.contributors, account_ids)
    except IntegrityError:
        log.info("family %s: buckets from %s were sealed by another sealer; skipped", family.id,
                 chunk.start.isoformat())
        return False
    return True


def seal_family(engine: Engine, settings: Settings, family: TableFamily, *, now: datetime,
                keep_going: Callable[[], bool] = lambda: True) -> FamilySealed:
    """Seal every due, unsealed bucket of ``family``, oldest first, one chunk per transaction
    (stopping early, between chunks, once ``keep_going()`` is false)."""
    plan = family_plan(family)
    due = due_buckets(time_bucket=family.time_bucket, seal_from=family.seal_from,
                      through=due_through(settings, now), sealed=_sealed_starts(engine, family.id))
    count, first = 0, None
    for chunk in chunks(family.time_bucket, due):
        if not keep_going():
            break
        sealed, account_ids = _read_chunk(engine, settings, family, plan, chunk)
        if write_chunk(engine, family, chunk, sealed, account_ids, sealed_at=now):
            count += len(chunk.starts)
            first = first or chunk.start
    with read_snapshot(engine) as session:
        through = sealed_through(session, family)
    return FamilySealed(family_id=family.id, kind=family.kind, purpose_code=family.purpose_code,
                        time_bucket=family.time_bucket, resolution=family.resolution, buckets_sealed=count,
                        first=first, sealed_through=through)


def seal_due(engine: Engine, settings: Settings, *, now: datetime | None = None,
             family_ids: Iterable[str] | None = None,
             keep_going: Callable[[], bool] = lambda: True) -> list[FamilySealed]:
    """Seal every due bucket of every open family (or of ``family_ids``); idempotent."""
    now = now or utcnow()
    with read_snapshot(engine) as session:
        families = list_families(session)
        session.expunge_all()  # plain values from here on (the snapshot's rollback would expire them)
    wanted = set(family_ids) if family_ids is not None else None
    reports = []
    for family in families:
        if wanted is not None and family.id not in wanted:
            continue
        report = seal_family(engine, settings, family, now=now, keep_going=keep_going)
        if report.buckets_sealed:
            log.info("family %s (%s, %s, %s, res %d): sealed %d buckets from %s; sealed through %s", family.id,
                     family.kind, family.purpose_code, family.time_bucket, family.resolution,
                     report.buckets_sealed, report.first.isoformat() if report.first else "-",
                     report.sealed_through.isoformat() if report.sealed_through else "-")
        reports.append(report)
    return reports
