"""Endpoints of the ingest domain: native batches, OwnTracks HTTP mode, Overland.

Bodies are read raw and decoded by the service (not by a Pydantic model) because validation is per
ping: a bad ping is reported in ``rejected`` and must not fail its batch. Each route is rate-limited per
token, and its response is sent only after the request's transaction (all accepted pings) has committed.
The handlers are ``async`` and send the service call to the thread pool themselves: one trip per
request instead of two (FastAPI validates a sync handler's response in a second trip).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import (
    KeyringDep,
    MemberBearerOrBasic,
    MemberBearerOrQuery,
    MemberCaller,
    SessionDep,
    SettingsDep,
)
from api.problems import problem_doc
from api.routing import QueuedWriterRoute, domain_router
from coop.accounts.service import Principal
from coop.ingest import service
from coop.ingest.schemas import (
    IngestResult,
    OverlandBatchIn,
    OverlandResult,
    OwnTracksMessageIn,
    PingBatchIn,
)

router = domain_router(tag="ingest", route_class=QueuedWriterRoute)

BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: problem_doc("Body larger than 1 MiB"),
    415: problem_doc("Body is not JSON"),
}


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body that is documented by ``model`` but decoded by hand (nested models inlined)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


async def raw_body(request: Request) -> bytes:
    """The request body (at most ``max_body_bytes``: the middleware answers 413 beyond)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def _rate_limit(request: Request, caller: Principal) -> Principal:
    request.app.state.ingest_limiter.hit(caller.token_id, what="ingest requests for this token")
    return caller


async def native_caller(request: Request, caller: MemberCaller) -> Principal:
    return _rate_limit(request, caller)


async def owntracks_caller(request: Request, caller: MemberBearerOrBasic) -> Principal:
    return _rate_limit(request, caller)


async def overland_caller(request: Request, caller: MemberBearerOrQuery) -> Principal:
    return _rate_limit(request, caller)


@router.post("/v1/pings", responses=BODY_RESPONSES, openapi_extra=_request_body(PingBatchIn))
async def post_pings(caller: Annotated[Principal, Depends(native_caller)], body: RawBody, session: SessionDep,
                     settings: SettingsDep, keyring: KeyringDep) -> IngestResult:
    """Store a batch of 1..1000 pings; each ping is accepted, a duplicate, dropped or rejected."""
    return await run_in_threadpool(service.ingest_native_body, session, account=caller.account, body=body,
                                   keyring=keyring, settings=settings)


@router.post("/v1/ingest/owntracks", responses=BODY_RESPONSES, openapi_extra=_request_body(OwnTracksMessageIn))
async def post_owntracks(caller: Annotated[Principal, Depends(owntracks_caller)], body: RawBody,
                         session: SessionDep, settings: SettingsDep, keyring: KeyringDep) -> list[Any]:
    """OwnTracks HTTP mode: a ``location`` message is ingested, any other message ignored; answers ``[]``."""
    await run_in_threadpool(service.ingest_owntracks_body, session, account=caller.account, body=body,
                            keyring=keyring, settings=settings)
    return []


@router.post("/v1/ingest/overland", responses=BODY_RESPONSES, openapi_extra=_request_body(OverlandBatchIn))
async def post_overland(caller: Annotated[Principal, Depends(overland_caller)], body: RawBody,
                        session: SessionDep, settings: SettingsDep, keyring: KeyringDep) -> OverlandResult:
    """Overland: a batch of GeoJSON points; ``{"result": "ok", ...}`` once the batch has committed."""
    return await run_in_threadpool(service.ingest_overland_body, session, account=caller.account, body=body,
                                   keyring=keyring, settings=settings)
