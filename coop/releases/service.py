"""Releases: request, read, download (logged), audit downloads, and a member's usage.

Invariants: a release is visible to the board and to its licence's licensee only (anyone else: 404);
releases under one licence never overlap in time (failed ones excepted), checked under a lock on the
licence row so two concurrent requests cannot both pass; a release is requested only under an active,
paid licence, for whole buckets inside the licence's period that are all sealed for the licence's
family (409 with ``sealed_through`` otherwise); the licensee downloads only while the licence is active
(403 afterwards), the board always; every file served is logged first. A member's usage lists the
releases whose family took their data as input in the release's period, with the same units whether
or not any of their cells was published.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from aggregation.periods import Period, is_aligned
from aggregation.spec import DatasetSpec
from aggregation.writers import PREVIEW_NAME
from coop.accounts.models import MemberKey
from coop.accounts.service import Principal
from coop.kit.audit import record_audit
from coop.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from coop.kit.pagination import keyset_page
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.licensing.models import Licence
from coop.licensing.status import ACTIVE, is_paid, licence_status
from coop.licensing.visibility import downloads_regardless_of_status, may_see_releases_of
from coop.releases.builder import release_dir
from coop.releases.kinds import SERVED_FILES
from coop.releases.manifest import served_manifest
from coop.releases.models import Release, ReleaseContribution, ReleaseDownload
from coop.releases.schemas import UsagePublic
from coop.releases.sealed import family_view, require_sealed


def visible_licence(session: Session, *, caller: Principal, licence_id: str, lock: bool = False) -> Licence:
    query = select(Licence).where(Licence.id == licence_id)
    licence = session.exec(query.with_for_update() if lock else query).first()
    if licence is None or not may_see_releases_of(caller, licensee_id=licence.licensee_id):
        raise NotFound("no such licence")
    return licence


def visible_release(session: Session, *, caller: Principal, release_id: str) -> tuple[Release, Licence]:
    release = session.get(Release, release_id)
    licence = session.get(Licence, release.licence_id) if release else None
    if release is None or licence is None or not may_see_releases_of(caller, licensee_id=licence.licensee_id):
        raise NotFound("no such release")
    return release, licence


def release_manifest(session: Session, *, caller: Principal, release_id: str) -> dict[str, Any]:
    """The manifest served for a visible release (signed as built once ready)."""
    release, licence = visible_release(session, caller=caller, release_id=release_id)
    privacy = None
    if not release.jws and licence.family_id is not None:
        privacy = family_view(session, licence.family_id).privacy()
    return served_manifest(release, licence, privacy=privacy)


def _dataset(licence: Licence) -> DatasetSpec:
    try:
        return DatasetSpec.from_licence(licence.dataset, k=licence.k)
    except (KeyError, TypeError, ValueError) as exc:
        raise Conflict(f"the licence's dataset spec is not buildable: {exc}") from exc


def _check_period(period: Period, spec: DatasetSpec) -> None:
    if period.start >= period.end:
        raise InvalidInput("end must be after start (end is exclusive)")
    for name, day in (("start", period.start), ("end", period.end)):
        if not is_aligned(day, spec.time_bucket):
            raise InvalidInput(f"{name} {day.isoformat()} is not the start of a {spec.time_bucket.value} "
                               "bucket (weeks start on Monday)")
    if not period.within(spec.period):
        raise InvalidInput(f"the period must lie inside the licence's period {spec.period.start.isoformat()}"
                           f"..{spec.period.end.isoformat()} (end exclusive)")


def request_release(session: Session, *, caller: Principal, licence_id: str, start: date, end: date) -> Release:
    """Queue a release of ``[start, end)`` under the licence (the caller's own, or any for the board)."""
    licence = visible_licence(session, caller=caller, licence_id=licence_id, lock=True)
    spec = _dataset(licence)
    period = Period(start=start, end=end)
    _check_period(period, spec)
    status = licence_status(licence)
    if status != ACTIVE:
        raise Conflict(f"the licence is {status}; no further releases can be built under it")
    if not is_paid(licence):
        raise Conflict(f"the licence fee is not paid in full ({licence.paid_pence} of {licence.fee_pence} "
                       "pence received); releases can be built once it is")
    earlier = session.exec(select(Release).where(
        Release.licence_id == licence.id, col(Release.status) != "failed",
        col(Release.start) < period.end, col(Release.end) > period.start)).first()
    if earlier is not None:
        raise Conflict(f"the period overlaps release {earlier.id} ({earlier.start.isoformat()}.."
                       f"{earlier.end.isoformat()}); releases under one licence never overlap")
    require_sealed(session, family=family_view(session, licence.family_id), period=period)
    release = Release(id=str(uuid.uuid4()), licence_id=licence.id, requested_by=caller.id, start=start,
                      end=end, status="queued", progress=0.0, created_at=utcnow())
    session.add(release)
    session.flush()
    record_audit(session, actor_id=caller.id, action="release.requested", subject_type="release",
                 subject_id=release.id, detail={"licence_id": licence.id, "start": start.isoformat(),
                                                "end": end.isoformat()})
    return release


def open_data_file(session: Session, *, caller: Principal, release_id: str, file_name: str,
                   settings: Settings) -> Path:
    """A data file of a ready release (access checked, download logged); only the files its signed
    manifest lists exist (404 otherwise: an od release has no ``cells.*``, a presence or stays release no
    ``od.*``, releases built before ``cells.parquet`` and ``datapackage.json`` existed neither)."""
    if file_name not in SERVED_FILES:
        raise NotFound(f"no such file; a release has some of {', '.join(SERVED_FILES)}")
    return _open_release_file(session, caller=caller, release_id=release_id, file_name=file_name,
                              settings=settings)


def open_preview(session: Session, *, caller: Principal, release_id: str, settings: Settings) -> Path:
    """The release's ``preview.svg`` (the same access rule as the data, since it shows the data)."""
    return _open_release_file(session, caller=caller, release_id=release_id, file_name=PREVIEW_NAME,
                              settings=settings)


def _open_release_file(session: Session, *, caller: Principal, release_id: str, file_name: str,
                       settings: Settings) -> Path:
    release, licence = visible_release(session, caller=caller, release_id=release_id)
    if not downloads_regardless_of_status(caller):
        status = licence_status(licence)
        if status != ACTIVE:
            raise Forbidden(f"the licence is {status}; its releases can no longer be downloaded")
    if release.status != "ready":
        raise Conflict(f"the release is {release.status}; files exist only once it is ready")
    listed = [str(entry.get("name")) for entry in release.files or []]
    if file_name not in listed:
        raise NotFound(f"this release has no {file_name}; its files are {', '.join(listed)}")
    path = release_dir(settings, release.id) / file_name
    if not path.is_file():
        raise NotFound("the release's files are not on this server")
    session.add(ReleaseDownload(id=str(uuid.uuid4()), release_id=release.id, account_id=caller.id,
                                file_name=file_name, at=utcnow()))
    session.flush()
    return path


def list_downloads(session: Session, *, release_id: str, limit: int,
                   cursor: str | None) -> tuple[list[ReleaseDownload], str | None]:
    """One page of a release's download log, oldest first (board only; checked by the router)."""
    if session.get(Release, release_id) is None:
        raise NotFound("no such release")
    query = select(ReleaseDownload).where(ReleaseDownload.release_id == release_id)
    return keyset_page(session, query, order=[col(ReleaseDownload.at), col(ReleaseDownload.id)],
                       limit=limit, cursor=cursor)


def member_usage(session: Session, *, account_id: str, limit: int,
                 cursor: str | None) -> tuple[list[UsagePublic], str | None]:
    """One page of the ready releases that counted the member, oldest build first."""
    member_no = session.exec(select(MemberKey.no).where(MemberKey.account_id == account_id)).first()
    if member_no is None:
        return [], None
    query = (select(Release)
             .join(ReleaseContribution, col(ReleaseContribution.release_id) == col(Release.id))
             .where(ReleaseContribution.member_no == member_no, Release.status == "ready"))
    releases, next_cursor = keyset_page(session, query, order=[col(Release.built_at), col(Release.id)],
                                        limit=limit, cursor=cursor)
    ids = [release.id for release in releases]
    units = dict(session.exec(select(ReleaseContribution.release_id, ReleaseContribution.units).where(
        col(ReleaseContribution.release_id).in_(ids), ReleaseContribution.member_no == member_no)).all())
    licences = {licence.id: licence for licence in session.exec(
        select(Licence).where(col(Licence.id).in_({release.licence_id for release in releases}))).all()}
    items = []
    for release in releases:
        licence = licences[release.licence_id]
        assert release.built_at is not None
        items.append(UsagePublic(release_id=release.id, licence_id=licence.id,
                                 organisation=licence.organisation, purpose=licence.purpose_code,
                                 built_at=release.built_at, contribution_units=units[release.id]))
    return items, next_cursor
