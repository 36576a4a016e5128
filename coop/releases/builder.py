"""The release builder: sealed rows of the licence's family -> files -> input units -> signed manifest.

Invariants: a build runs only for a release it has claimed (``queued`` -> ``building`` in one UPDATE,
so two workers never build the same release); the licence must still be active and paid, and the period
sealed for its family, when the build starts; the rows are exactly the family's sealed rows of the
period and region with ``members >= k`` (never recomputed from pings), so every release of a family
agrees on every cell-bucket; files are written under a temporary name and moved into place whole; the
release becomes ``ready`` (with its input units and signed manifest) in one transaction, or ``failed``
with a reason. Nothing exact besides the published rows is stored, logged or signed: the manifest's
stats are ``{"rows"}``. Builds open their own sessions and never share the request's.
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
from aggregation.datapackage import LicenceTerms, PackageInfo, write_datapackage
from aggregation.periods import Period
from aggregation.preview import PreviewInfo
from aggregation.spec import DatasetSpec
from aggregation.writers import DATAPACKAGE_NAME, PREVIEW_NAME, describe_file
from consent.models import Purpose
from coop.accounts.models import MemberKey
from coop.kit.crypto import Keyring
from coop.kit.db import session_scope
from coop.kit.errors import Conflict
from coop.kit.settings import Settings
from coop.kit.timeutil import rfc3339, utcnow
from coop.licensing.models import Licence
from coop.licensing.status import ACTIVE, is_paid, licence_status
from coop.releases.kinds import release_kind
from coop.releases.manifest import sign_manifest
from coop.releases.models import Release, ReleaseContribution
from coop.releases.sealed import (
    FamilyView,
    family_view,
    member_units,
    require_sealed,
    sealed_cells,
    sealed_pairs,
)

log = logging.getLogger("coop.releases")
_MEMBER_BATCH = 5_000
_MEMBER_KEY: sa.Table = MemberKey.__table__  # type: ignore[attr-defined]
_CONTRIBUTION: sa.Table = ReleaseContribution.__table__  # type: ignore[attr-defined]

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
    purpose_title: str
    spec: DatasetSpec
    period: Period
    family: FamilyView
    licence: LicenceTerms


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
    period = Period(start=release.start, end=release.end)
    try:
        family = family_view(session, licence.family_id)
        require_sealed(session, family=family, period=period)
    except Conflict as refused:
        raise BuildRefused(refused.detail) from refused
    terms = LicenceTerms(licence_id=licence.id, terms_version=licence.terms_version,
                         organisation=licence.organisation, purpose=licence.purpose_code,
                         valid_from=rfc3339(licence.valid_from), valid_until=rfc3339(licence.valid_until))
    return _Plan(release_id=release.id, purpose_title=purpose.title if purpose else licence.purpose_code,
                 spec=spec, period=period, family=family, licence=terms)


def read_rows(session: Session, plan: _Plan) -> pl.DataFrame:
    """The release's rows: the family's sealed rows (cells, or od pairs) of the period and region with
    ``members >= k``."""
    read = sealed_pairs if release_kind(plan.family.kind).pairs else sealed_cells
    return read(session, family_id=plan.family.family_id, period=plan.period, region=plan.spec.region,
                min_members=plan.spec.k)


_KIND_TITLES = {"presence": "presence", "stays": "stays", "od": "origin-destination flows"}
_SUBJECTS = {"presence": "where co-op members were", "stays": "where co-op members stayed",
             "od": "trips between stays"}


def _write_files(ctx: BuildContext, plan: _Plan, rows: pl.DataFrame, *,
                 built_at: datetime) -> list[dict[str, str | int]]:
    """Every file of the release (data, preview, then the data package describing them), written whole."""
    final = release_dir(ctx.settings, plan.release_id)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    layout = release_kind(plan.family.kind)
    written = layout.write_data(partial, rows)
    preview = PreviewInfo(title=plan.purpose_title, period=plan.period, time_bucket=plan.spec.time_bucket,
                          resolution=plan.spec.resolution, k=max(plan.spec.k, plan.family.tau),
                          source=f"{ctx.settings.name} \u00b7 release {plan.release_id}",
                          what=_SUBJECTS.get(plan.family.kind, plan.family.kind))
    (partial / PREVIEW_NAME).write_text(layout.render_preview(rows, preview), encoding="utf-8")
    written.append(describe_file(partial / PREVIEW_NAME))
    package = PackageInfo(
        release_id=plan.release_id, title=f"{plan.purpose_title}: {_KIND_TITLES.get(plan.family.kind, plan.family.kind)} per "
                                          f"{plan.spec.time_bucket.value}, H3 resolution {plan.spec.resolution}",
        created=rfc3339(built_at), publisher=ctx.settings.name, family_id=plan.family.family_id,
        kind=plan.family.kind, time_bucket=plan.spec.time_bucket.value, resolution=plan.spec.resolution,
        start=plan.period.start.isoformat(), end=plan.period.end.isoformat(), k=plan.spec.k,
        licence=plan.licence, privacy=plan.family.privacy())
    written.append(write_datapackage(partial / DATAPACKAGE_NAME, package, written))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return [entry.as_manifest_entry() for entry in written]


def _member_numbers(session: Session, account_ids: list[str]) -> dict[str, int]:
    """Each account's pseudonymous member number (plain Core reads, in batches)."""
    keys = _MEMBER_KEY
    numbers: dict[str, int] = {}
    connection = session.connection()
    for first in range(0, len(account_ids), _MEMBER_BATCH):
        batch = account_ids[first:first + _MEMBER_BATCH]
        numbers.update((str(account_id), int(no)) for account_id, no in connection.execute(
            sa.select(keys.c.account_id, keys.c.no).where(keys.c.account_id.in_(batch))))
    return numbers


def _finish(ctx: BuildContext, plan: _Plan, *, rows: int, files: list[dict[str, str | int]],
            built_at: datetime) -> None:
    with session_scope(ctx.engine) as session:
        release = session.get(Release, plan.release_id)
        licence = session.get(Licence, release.licence_id) if release else None
        if release is None or licence is None:
            raise BuildRefused("the release no longer exists")
        units = member_units(session, family_id=plan.family.family_id, period=plan.period)
        numbers = _member_numbers(session, sorted(units))
        contributions = [{"release_id": plan.release_id, "member_no": numbers[member_id], "units": count}
                         for member_id, count in sorted(units.items()) if member_id in numbers]
        if contributions:
            session.connection().execute(_CONTRIBUTION.insert(), contributions)
        release.stats = {"rows": rows}
        release.files = files
        release.status, release.progress, release.built_at, release.error = "ready", 1.0, built_at, None
        release.jws = sign_manifest(release, licence, ctx.keyring, privacy=plan.family.privacy())
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
            rows = read_rows(session, plan)
        watch.lap("read")
        _set_progress(ctx.engine, release_id, 0.5)
        built_at = ctx.clock()
        files = _write_files(ctx, plan, rows, built_at=built_at)
        watch.lap("files")
        _set_progress(ctx.engine, release_id, 0.9)
        _finish(ctx, plan, rows=rows.height, files=files, built_at=built_at)
        watch.lap("store")
        log.info("release %s built: %d rows (%s)", release_id, rows.height, ", ".join(watch.laps))
    except BuildRefused as refused:
        _fail(ctx.engine, release_id, str(refused))
    except Exception:
        log.exception("release %s failed to build", release_id)
        _fail(ctx.engine, release_id, "the build failed unexpectedly; the co-op has been notified")
