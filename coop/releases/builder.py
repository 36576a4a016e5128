"""The release builder: snapshot read -> k-anonymous maths -> files -> contributions -> signed manifest.

Invariants: a build runs only for a release it has claimed (``queued`` -> ``building`` in one UPDATE,
so two workers never build the same release); the licence must still be active and paid when the build
starts; files are written under a temporary name and moved into place whole; the release becomes
``ready`` (with its contributions and signed manifest) in one transaction, or ``failed`` with a reason.
Builds open their own sessions and never share the request's.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

import coop.models  # noqa: F401  (every table registered, so the ORM resolves foreign keys in a bare worker)
from aggregation.kanon import Aggregate, aggregate
from aggregation.periods import Period
from aggregation.preview import PreviewInfo, render_preview
from aggregation.spec import DatasetSpec, restrict_to_region
from aggregation.writers import CSV_NAME, GEOJSON_NAME, PREVIEW_NAME, printable_rows, write_csv, write_geojson
from consent.models import Purpose
from coop.kit.crypto import Keyring
from coop.kit.db import session_scope
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.licensing.models import Licence
from coop.licensing.status import ACTIVE, is_paid, licence_status
from coop.releases.manifest import sign_manifest
from coop.releases.models import Release, ReleaseContribution
from coop.releases.snapshot import FINEST_RESOLUTION, read_snapshot

log = logging.getLogger("coop.releases")


class BuildRefused(Exception):
    """The release cannot be built (the reason is safe to show to the licensee)."""


@dataclass(frozen=True)
class BuildContext:
    engine: Engine
    settings: Settings
    keyring: Keyring
    clock: Callable[[], datetime] = utcnow
    """Gives ``built_at`` (simulations such as the demo pass their own clock)."""


@dataclass(frozen=True)
class _Plan:
    release_id: str
    purpose_code: str
    purpose_title: str
    spec: DatasetSpec
    period: Period


def release_dir(settings: Settings, release_id: str) -> Path:
    return settings.releases_dir / release_id


def claim_release(engine: Engine, release_id: str) -> bool:
    """Move a queued release to ``building``; False when another worker has it or it is not queued."""
    with session_scope(engine) as session:
        result = session.execute(sa.update(Release)
                                 .where(col(Release.id) == release_id, col(Release.status) == "queued")
                                 .values(status="building", progress=0.05))
        return bool(getattr(result, "rowcount", 0) == 1)


def _set_progress(engine: Engine, release_id: str, progress: float) -> None:
    with session_scope(engine) as session:
        session.execute(sa.update(Release).where(col(Release.id) == release_id).values(progress=progress))


def _fail(engine: Engine, release_id: str, reason: str) -> None:
    with session_scope(engine) as session:
        session.execute(sa.update(Release).where(col(Release.id) == release_id)
                        .values(status="failed", error=reason))


def _plan(session: Session, release_id: str) -> _Plan:
    release = session.get(Release, release_id)
    if release is None:
        raise BuildRefused("the release no longer exists")
    licence = session.get(Licence, release.licence_id)
    if licence is None:
        raise BuildRefused("the licence no longer exists")
    status = licence_status(licence)
    if status != ACTIVE:
        raise BuildRefused(f"the licence is {status}; releases can be built only under an active licence")
    if not is_paid(licence):
        raise BuildRefused("the licence fee is not paid in full")
    purpose = session.get(Purpose, licence.purpose_code)
    spec = DatasetSpec.from_licence(licence.dataset, k=licence.k)
    return _Plan(release_id=release.id, purpose_code=licence.purpose_code,
                 purpose_title=purpose.title if purpose else licence.purpose_code, spec=spec,
                 period=Period(start=release.start, end=release.end))


def compute(ctx: BuildContext, plan: _Plan) -> tuple[Aggregate, int]:
    """The table for ``plan`` from one snapshot; also returns the pings considered."""
    spec = plan.spec
    started = time.perf_counter()
    snapshot = read_snapshot(ctx.engine, purpose_code=plan.purpose_code, period=plan.period,
                             bucket=spec.time_bucket,
                             cell_resolution=FINEST_RESOLUTION if spec.region else spec.resolution)
    log.info("release %s: snapshot read in %.2fs (%d counted lines)", plan.release_id,
             time.perf_counter() - started, snapshot.counts.height)
    _set_progress(ctx.engine, plan.release_id, 0.4)
    counts = snapshot.counts
    if spec.region is not None:
        counts = restrict_to_region(counts, region=spec.region, resolution=spec.resolution)
    result = aggregate(counts, resolution=spec.resolution, k=spec.k,
                       cells_per_member=spec.time_bucket.cells_per_member,
                       coarsest_resolution=ctx.settings.coarsest_resolution)
    return result, int(counts.get_column("pings").sum() or 0)


def _write_files(ctx: BuildContext, plan: _Plan, rows: pl.DataFrame) -> list[dict[str, str | int]]:
    final = release_dir(ctx.settings, plan.release_id)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    printable = printable_rows(rows)
    cells = rows.get_column("cell").to_list()
    written = [write_csv(partial / CSV_NAME, printable), write_geojson(partial / GEOJSON_NAME, printable, cells)]
    info = PreviewInfo(title=plan.purpose_title, period=plan.period, time_bucket=plan.spec.time_bucket,
                       resolution=plan.spec.resolution, k=plan.spec.k,
                       source=f"{ctx.settings.name} \u00b7 release {plan.release_id}")
    (partial / PREVIEW_NAME).write_text(render_preview(rows, info), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return [entry.as_manifest_entry() for entry in written]


def _finish(ctx: BuildContext, plan: _Plan, result: Aggregate, *, pings_considered: int,
            files: list[dict[str, str | int]]) -> None:
    with session_scope(ctx.engine) as session:
        release = session.get(Release, plan.release_id)
        licence = session.get(Licence, release.licence_id) if release else None
        if release is None or licence is None:
            raise BuildRefused("the release no longer exists")
        units = [{"release_id": plan.release_id, "member_no": member_no, "units": count}
                 for member_no, count in result.units.iter_rows()]
        if units:
            session.execute(sa.insert(ReleaseContribution), units)
        rows = result.rows
        release.stats = {
            "rows": rows.height,
            "generalised_rows": rows.filter(pl.col("resolution") < plan.spec.resolution).height,
            "suppressed_contributions": result.suppressed_contributions,
            "pings_considered": pings_considered,
        }
        release.files = files
        release.status, release.progress, release.built_at, release.error = "ready", 1.0, ctx.clock(), None
        release.jws = sign_manifest(release, licence, ctx.keyring)
        session.add(release)


class _Stopwatch:
    """Phase timings for the build log (seconds since the previous lap)."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append(f"{name} {now - self.last:.2f}s")
        self.last = now


def build_release(ctx: BuildContext, release_id: str) -> None:
    """Build one queued release to ``ready`` (or ``failed``); never raises."""
    if not claim_release(ctx.engine, release_id):
        return
    watch = _Stopwatch()
    try:
        with session_scope(ctx.engine) as session:
            plan = _plan(session, release_id)
        result, pings_considered = compute(ctx, plan)
        watch.lap("read+maths")
        _set_progress(ctx.engine, release_id, 0.6)
        files = _write_files(ctx, plan, result.rows)
        watch.lap("files")
        _set_progress(ctx.engine, release_id, 0.9)
        _finish(ctx, plan, result, pings_considered=pings_considered, files=files)
        watch.lap("store")
        log.info("release %s built: %d rows from %d pings (%s)", release_id, result.rows.height,
                 pings_considered, ", ".join(watch.laps))
    except BuildRefused as refused:
        _fail(ctx.engine, release_id, str(refused))
    except Exception:
        log.exception("release %s failed to build", release_id)
        _fail(ctx.engine, release_id, "the build failed unexpectedly; the co-op has been notified")
