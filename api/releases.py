"""Endpoints of the releases domain (see ../shared/api-contract.md "Releases" and ``/v1/me/usage``).

The build runs on the app's release worker (``app.state.release_worker``), started with the app's
lifespan; a request that queues a build hands it to the worker only after its transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from aggregation.od_files import OD_CSV_NAME, OD_GEOJSON_NAME, OD_PARQUET_NAME
from aggregation.writers import CSV_NAME, DATAPACKAGE_NAME, GEOJSON_NAME, PARQUET_NAME, PREVIEW_NAME
from api.deps import BoardCaller, MemberCaller, SessionDep, SettingsDep, require_roles
from api.idempotent import IdempotencyKey, idempotent_response
from api.params import CursorQuery, LimitQuery
from api.problems import problem_doc
from api.routing import domain_router
from coop.accounts.roles import Role
from coop.accounts.service import Principal
from coop.kit.pagination import DEFAULT_LIMIT, Page
from coop.kit.settings import Settings
from coop.releases import service
from coop.releases.builder import BuildContext
from coop.releases.kinds import FILE_MEDIA_TYPES
from coop.releases.schemas import DownloadPublic, ReleaseCreate, ReleaseManifest, ReleaseQueued, UsagePublic
from coop.releases.worker import ReleaseWorker, recover_interrupted_builds

router = domain_router(tag="releases")
log = logging.getLogger("coop.releases")

LicenseeOrBoard = Annotated[Principal, Depends(require_roles(Role.MODELLER, Role.BOARD))]


def release_worker(app: FastAPI) -> ReleaseWorker:
    """The app's worker, created on first use (the lifespan creates it at start)."""
    worker: ReleaseWorker | None = getattr(app.state, "release_worker", None)
    if worker is None:
        worker = ReleaseWorker(BuildContext(engine=app.state.engine, settings=app.state.settings,
                                            keyring=app.state.keyring))
        app.state.release_worker = worker
    return worker


@asynccontextmanager
async def release_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the worker, fail builds a crashed process left ``building``, resubmit queued ones."""
    worker = release_worker(app)
    try:
        for release_id in await run_in_threadpool(recover_interrupted_builds, app.state.engine):
            worker.submit(release_id)
    except SQLAlchemyError:  # the app must start (and /readyz say 503) while the database is down
        log.warning("could not recover interrupted release builds: the database does not answer")
    try:
        yield
    finally:
        await run_in_threadpool(worker.shutdown)
        app.state.release_worker = None


router.lifespan_context = release_lifespan


@router.post("/v1/licences/{licence_id}/releases", status_code=202, response_model=ReleaseQueued,
             responses={404: problem_doc("No such licence (or not the caller's)"),
                        409: problem_doc("Overlapping period, period not sealed yet (with sealed_through), "
                                         "licence not active or not paid, "
                                         "or Idempotency-Key reused with another body"),
                        422: problem_doc("Period not bucket-aligned or outside the licence's period")})
def create_release(licence_id: str, body: ReleaseCreate, caller: LicenseeOrBoard, session: SessionDep,
                   request: Request, background: BackgroundTasks,
                   idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Queue a build of ``[start, end)``; poll ``GET /v1/releases/{release_id}`` for its progress."""
    queued: list[str] = []

    def produce() -> ReleaseQueued:
        release = service.request_release(session, caller=caller, licence_id=licence_id, start=body.start,
                                          end=body.end)
        queued.append(release.id)
        return ReleaseQueued(release_id=release.id, status=release.status, progress=release.progress)

    response = idempotent_response(session, caller_id=caller.id, scope=f"releases:{licence_id}",
                                   key=idempotency_key, body=body, status_code=202, produce=produce)
    worker = release_worker(request.app)
    for release_id in queued:  # runs after the commit, so the worker finds the row
        background.add_task(worker.submit, release_id)
    return response


@router.get("/v1/releases/{release_id}", response_model=ReleaseManifest,
            responses={404: problem_doc("No such release (or not the caller's)")})
def read_release(release_id: str, caller: LicenseeOrBoard, session: SessionDep) -> JSONResponse:
    """The manifest; once ready it carries the files' sizes and SHA-256 and a JWS over all of it."""
    return JSONResponse(service.release_manifest(session, caller=caller, release_id=release_id))


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: problem_doc("The licence is revoked or expired (licensee)"),
    404: problem_doc("No such release (or not the caller's), or the release has no such file "
                     "(od releases have od.*, presence and stays releases cells.*)"),
    409: problem_doc("The release is not ready"),
}


def _data_file(*, release_id: str, file_name: str, caller: Principal, session: Session,
               settings: Settings) -> FileResponse:
    path = service.open_data_file(session, caller=caller, release_id=release_id, file_name=file_name,
                                  settings=settings)
    return FileResponse(path, media_type=FILE_MEDIA_TYPES[file_name], filename=file_name)


@router.get("/v1/releases/{release_id}/files/cells.csv", response_class=FileResponse, responses=_FILE_RESPONSES)
def download_csv(release_id: str, caller: LicenseeOrBoard, session: SessionDep,
                 settings: SettingsDep) -> FileResponse:
    """The release's rows as CSV: ``bucket_start,cell,resolution,members`` (logged in the download audit)."""
    return _data_file(release_id=release_id, file_name=CSV_NAME, caller=caller, session=session,
                      settings=settings)


@router.get("/v1/releases/{release_id}/files/cells.geojson", response_class=FileResponse,
            responses=_FILE_RESPONSES)
def download_geojson(release_id: str, caller: LicenseeOrBoard, session: SessionDep,
                     settings: SettingsDep) -> FileResponse:
    """The release's rows as GeoJSON, one H3 hexagon polygon per row (logged in the download audit)."""
    return _data_file(release_id=release_id, file_name=GEOJSON_NAME, caller=caller, session=session,
                      settings=settings)


@router.get("/v1/releases/{release_id}/files/cells.parquet", response_class=FileResponse,
            responses=_FILE_RESPONSES)
def download_parquet(release_id: str, caller: LicenseeOrBoard, session: SessionDep,
                     settings: SettingsDep) -> FileResponse:
    """The release's rows as Parquet, typed (``bucket_start`` a UTC timestamp; logged in the download audit)."""
    return _data_file(release_id=release_id, file_name=PARQUET_NAME, caller=caller, session=session,
                      settings=settings)


@router.get("/v1/releases/{release_id}/files/od.csv", response_class=FileResponse, responses=_FILE_RESPONSES)
def download_od_csv(release_id: str, caller: LicenseeOrBoard, session: SessionDep,
                    settings: SettingsDep) -> FileResponse:
    """An od release's rows as CSV: ``bucket_start,origin,destination,resolution,members`` (logged)."""
    return _data_file(release_id=release_id, file_name=OD_CSV_NAME, caller=caller, session=session,
                      settings=settings)


@router.get("/v1/releases/{release_id}/files/od.geojson", response_class=FileResponse, responses=_FILE_RESPONSES)
def download_od_geojson(release_id: str, caller: LicenseeOrBoard, session: SessionDep,
                        settings: SettingsDep) -> FileResponse:
    """An od release's rows as GeoJSON, one LineString from origin centre to destination centre per row
    (logged in the download audit)."""
    return _data_file(release_id=release_id, file_name=OD_GEOJSON_NAME, caller=caller, session=session,
                      settings=settings)


@router.get("/v1/releases/{release_id}/files/od.parquet", response_class=FileResponse, responses=_FILE_RESPONSES)
def download_od_parquet(release_id: str, caller: LicenseeOrBoard, session: SessionDep,
                        settings: SettingsDep) -> FileResponse:
    """An od release's rows as Parquet, typed (``bucket_start`` a UTC timestamp; logged in the download audit)."""
    return _data_file(release_id=release_id, file_name=OD_PARQUET_NAME, caller=caller, session=session,
                      settings=settings)


@router.get("/v1/releases/{release_id}/files/datapackage.json", response_class=FileResponse,
            responses=_FILE_RESPONSES)
def download_datapackage(release_id: str, caller: LicenseeOrBoard, session: SessionDep,
                         settings: SettingsDep) -> FileResponse:
    """The Frictionless Data Package describing the release's files: sizes, hashes, schemas, the licence
    and the privacy parameters (logged in the download audit)."""
    return _data_file(release_id=release_id, file_name=DATAPACKAGE_NAME, caller=caller, session=session,
                      settings=settings)


@router.get("/v1/releases/{release_id}/preview.svg", response_class=FileResponse, responses=_FILE_RESPONSES)
def preview(release_id: str, caller: LicenseeOrBoard, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """A map of the release: hexagons shaded by average members per bucket (presence, stays), or the
    strongest flows (od)."""
    path = service.open_preview(session, caller=caller, release_id=release_id, settings=settings)
    return FileResponse(path, media_type=FILE_MEDIA_TYPES[PREVIEW_NAME])


@router.get("/v1/releases/{release_id}/downloads", responses={404: problem_doc("No such release")})
def list_downloads(release_id: str, caller: BoardCaller, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                   cursor: CursorQuery = None) -> Page[DownloadPublic]:
    rows, next_cursor = service.list_downloads(session, release_id=release_id, limit=limit, cursor=cursor)
    items = [DownloadPublic(download_id=row.id, release_id=row.release_id, account_id=row.account_id,
                            file_name=row.file_name, at=row.at) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


@router.get("/v1/me/usage")
def my_usage(caller: MemberCaller, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
             cursor: CursorQuery = None) -> Page[UsagePublic]:
    """The releases that counted the caller, with the contribution units each gave them."""
    items, next_cursor = service.member_usage(session, account_id=caller.id, limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)
