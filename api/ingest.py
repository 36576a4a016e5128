"""Endpoints of the ingest domain: native batches, OwnTracks HTTP mode, Overland.

Bodies are read raw and decoded here (not by a Pydantic model) because validation is per ping: a bad
ping is reported in ``rejected`` and must not fail its batch. Each route is rate-limited per token, and
its response is sent only after the request's transaction (all accepted pings) has committed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from api.deps import (
    KeyringDep,
    MemberBearerOrBasic,
    MemberBearerOrQuery,
    MemberCaller,
    SessionDep,
    SettingsDep,
)
from api.problems import problem_doc
from api.routing import domain_router
from coop.accounts.service import Principal
from coop.errors import InvalidInput
from coop.ingest import service
from coop.ingest.clients import overland_locations, owntracks_locations
from coop.ingest.schemas import (
    IngestResult,
    OverlandBatchIn,
    OverlandResult,
    OwnTracksMessageIn,
    PingBatchIn,
)

router = domain_router(tag="ingest")

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


async def json_body(request: Request) -> Any:
    """The decoded JSON body; 422 when it is not JSON (or nests deeper than the decoder allows)."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("the request body is not valid JSON") from exc


JsonBody = Annotated[Any, Depends(json_body)]


def _rate_limit(request: Request, caller: Principal) -> Principal:
    request.app.state.ingest_limiter.hit(caller.token_id, what="ingest requests for this token")
    return caller


def native_caller(request: Request, caller: MemberCaller) -> Principal:
    return _rate_limit(request, caller)


def owntracks_caller(request: Request, caller: MemberBearerOrBasic) -> Principal:
    return _rate_limit(request, caller)


def overland_caller(request: Request, caller: MemberBearerOrQuery) -> Principal:
    return _rate_limit(request, caller)


@router.post("/v1/pings", responses=BODY_RESPONSES, openapi_extra=_request_body(PingBatchIn))
def post_pings(caller: Annotated[Principal, Depends(native_caller)], body: JsonBody, session: SessionDep,
               settings: SettingsDep, keyring: KeyringDep) -> IngestResult:
    """Store a batch of 1..1000 pings; each ping is accepted, a duplicate, dropped or rejected."""
    pings = service.pings_of_native_body(body, max_batch=settings.max_batch)
    return service.ingest_pings(session, account=caller.account, items=pings, keyring=keyring,
                                settings=settings)


@router.post("/v1/ingest/owntracks", responses=BODY_RESPONSES, openapi_extra=_request_body(OwnTracksMessageIn))
def post_owntracks(caller: Annotated[Principal, Depends(owntracks_caller)], body: JsonBody,
                   session: SessionDep, settings: SettingsDep, keyring: KeyringDep) -> list[Any]:
    """OwnTracks HTTP mode: a ``location`` message is ingested, any other message ignored; answers ``[]``."""
    locations = owntracks_locations(body)
    if locations is None:
        raise InvalidInput("the body must be one OwnTracks JSON message (an object)")
    service.require_batch_size(locations, max_batch=settings.max_batch, field="messages", minimum=0)
    if locations:
        service.ingest_pings(session, account=caller.account, items=locations, keyring=keyring,
                             settings=settings)
    return []


@router.post("/v1/ingest/overland", responses=BODY_RESPONSES, openapi_extra=_request_body(OverlandBatchIn))
def post_overland(caller: Annotated[Principal, Depends(overland_caller)], body: JsonBody,
                  session: SessionDep, settings: SettingsDep, keyring: KeyringDep) -> OverlandResult:
    """Overland: a batch of GeoJSON points; ``{"result": "ok", ...}`` once the batch has committed."""
    locations = overland_locations(body)
    if locations is None:
        raise InvalidInput('the body must be {"locations": [GeoJSON Point Feature, ...]}')
    service.require_batch_size(locations, max_batch=settings.max_batch, field="locations", minimum=0)
    outcome = service.ingest_pings(session, account=caller.account, items=locations, keyring=keyring,
                                   settings=settings)
    return OverlandResult(**outcome.model_dump())
