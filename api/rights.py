"""Member data rights: ``GET /v1/me/pings``, ``GET /v1/me/export``, ``DELETE /v1/me``.

Every route needs the ``member`` role (401 without a valid token, 403 for another kind of account) and
only ever touches the caller's own data. The streamed bodies (GeoJSON, CSV, the export) open their own
read-only snapshot session; the request's session is done (committed and closed) before they start.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Annotated, Any

import anyio
from fastapi import Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.engine import Engine
from starlette.types import Receive, Scope, Send

from api.deps import KeyringDep, MemberCaller, SessionDep, SettingsDep, get_engine_dep
from api.params import CursorQuery, LimitQuery
from api.routing import domain_router
from coop.kit.pagination import DEFAULT_LIMIT, Page
from coop.kit.timeutil import utcnow
from coop.rights import erasure, export, formats, pings
from coop.rights.schemas import ErasurePublic, PingFormat, PingPublic
from coop.rights.timerange import parse_time_range

router = domain_router(tag="rights")

EngineDep = Annotated[Engine, Depends(get_engine_dep)]
TimeQuery = Annotated[str | None, Query(max_length=40, description="RFC 3339 with an offset, or epoch seconds")]
FormatQuery = Annotated[PingFormat, Query(description="json (paginated), geojson or csv (whole range, streamed)")]

PINGS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "JSON: one page. GeoJSON and CSV: the whole range, streamed as a download.",
          "model": Page[PingPublic],
          "content": {"application/geo+json": {"schema": {"type": "object"}},
                      "text/csv": {"schema": {"type": "string"}}}},
}
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "One JSON document (streamed): export, account, tokens, consents, consent_events, "
                         "privacy_zones, releases, ledger, audit_events, pings.",
          "content": {"application/json": {"schema": {"type": "object"}}}},
}


log = logging.getLogger("coop.api")


class ClosingDownload(StreamingResponse):
    """A streamed attachment whose generators are closed when the response ends, however it ends.

    Starlette abandons a sync body iterator when the client goes away; closing it here at once ends
    the body's read-only snapshot (and, on PostgreSQL, its server-side cursor) instead of leaving the
    connection idle in transaction until the garbage collector finds it.
    """

    def __init__(self, body: Generator[bytes, None, None], *, sources: tuple[Generator[Any, None, None], ...],
                 media_type: str, filename: str) -> None:
        super().__init__(body, media_type=media_type,
                         headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                  "Cache-Control": "no-store"})
        self._generators = (body, *sources)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close_generators)

    def _close_generators(self) -> None:
        for generator in self._generators:  # outermost first, so each one unwinds its own ``with`` blocks
            try:
                generator.close()
            except ValueError:  # still running in a worker thread: it is closed when that step returns
                log.warning("a download body was still running when its response ended")


def _download(chunks: Generator[str, None, None], *, source: Generator[Any, None, None], media_type: str,
              filename: str) -> ClosingDownload:
    return ClosingDownload(formats.encoded(chunks), sources=(chunks, source), media_type=media_type,
                           filename=filename)


@router.get("/v1/me/pings", response_model=None, responses=PINGS_RESPONSES)
def read_my_pings(caller: MemberCaller, session: SessionDep, keyring: KeyringDep, engine: EngineDep,
                  start: TimeQuery = None, end: TimeQuery = None, format: FormatQuery = PingFormat.JSON,
                  limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None) -> Response:
    """Your stored pings, decrypted: `start` inclusive, `end` exclusive; ordered by time.

    `limit` and `cursor` page the JSON format; GeoJSON and CSV stream the whole range.
    """
    time_range = parse_time_range(start, end)
    source = pings.member_pings(session, member_id=caller.id, keyring=keyring)
    if format is PingFormat.JSON:
        page = pings.page_pings(session, source=source, time_range=time_range, limit=limit, cursor=cursor)
        return JSONResponse(page.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
    batches = pings.stream_ping_batches(engine, source=source, time_range=time_range)
    if format is PingFormat.GEOJSON:
        return _download(formats.geojson_chunks(batches), source=batches, media_type="application/geo+json",
                         filename="pings.geojson")
    return _download(formats.csv_chunks(batches), source=batches, media_type="text/csv; charset=utf-8",
                     filename="pings.csv")


@router.get("/v1/me/export", response_model=None, responses=EXPORT_RESPONSES)
def export_my_data(request: Request, caller: MemberCaller, session: SessionDep, keyring: KeyringDep,
                   engine: EngineDep) -> Response:
    """Everything the co-op holds about you, as one JSON document (GDPR Art. 15 and 20).

    Rate-limited per member (``COOP_EXPORT_RATE_PER_HOUR``): a full export decrypts every ping.
    """
    request.app.state.export_limiter.hit(caller.id, what="exports this hour")
    source = pings.member_pings(session, member_id=caller.id, keyring=keyring)
    generated_at = utcnow()
    chunks = export.export_chunks(engine, member_id=caller.id, source=source, keyring=keyring,
                                  generated_at=generated_at)
    return _download(chunks, source=chunks, media_type="application/json",
                     filename=f"coop-export-{generated_at:%Y-%m-%d}.json")


@router.delete("/v1/me")
def erase_me(caller: MemberCaller, session: SessionDep, keyring: KeyringDep, settings: SettingsDep) -> ErasurePublic:
    """Erase yourself: pings and zones deleted, data key destroyed, consent withdrawn, tokens revoked.

    Ledger lines and consent history stay under your pseudonymous id. Your tokens answer 401 afterwards.
    """
    return erasure.erase_member(session, member_id=caller.id, keyring=keyring, controller_name=settings.name)
