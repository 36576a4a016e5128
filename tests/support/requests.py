"""What a well-formed request to each operation looks like, for the generated authorisation matrix.

Path parameters are filled from the seeded world (``tests/support/world.py``): an *owned* parameter names a
resource of the route's owner (a member's receipt, zone or token; a modeller's request, licence or
release); a *shared* one names something that belongs to no one in particular. A body is needed only
where the operation takes one: ``BODIES`` holds one per operation, keyed by its label, and a new
operation with a body and no entry here fails the matrix's success cell with a message saying so.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from coop.kit.timeutil import utcnow
from tests.support.licensing import request_body
from tests.support.routes import RouteInfo
from tests.support.world import (
    BOARD,
    MEMBER,
    MODELLER,
    PURPOSE,
    SEED_PING_PLACE,
    World,
    dataset_day,
    ping_batch,
)

MEMBER_OWNED = {"receipt_id", "zone_id", "token_id"}
MODELLER_OWNED = {"request_id", "licence_id", "release_id"}
SHARED_VALUES = {"file_name": "cells.csv"}

RESOURCE_OVERRIDES: dict[str, dict[str, str]] = {
    # The seeded paid licence is paid in full: a further payment needs the unpaid one.
    "POST /v1/licences/{licence_id}/payments": {"licence_id": "unpaid_licence_id"},
    # The od files exist only in an od release (a presence release answers 404 for them).
    **{f"GET /v1/releases/{{release_id}}/files/od.{suffix}": {"release_id": "od_release_id"}
       for suffix in ("csv", "geojson", "parquet")},
}


@dataclass(frozen=True)
class RequestSpec:
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def route_owner(info: RouteInfo) -> str | None:
    """Whose resource the route's path names: ``member``, ``modeller`` or None (nobody's)."""
    parameters = set(info.path_parameters)
    if parameters & MEMBER_OWNED:
        return MEMBER
    if parameters & MODELLER_OWNED:
        return MODELLER
    return None


def path_values(world: World, info: RouteInfo) -> dict[str, str]:
    """Real values for every path parameter: the owner's resources, or shared ones."""
    owner = route_owner(info)
    overrides = RESOURCE_OVERRIDES.get(info.label, {})
    values: dict[str, str] = {}
    for name in info.path_parameters:
        resource = overrides.get(name, name)
        if owner is not None and resource in world.owned[owner].resources:
            values[name] = world.owned[owner].resources[resource]
        elif name in world.shared:
            values[name] = world.shared[name]
        elif name in SHARED_VALUES:
            values[name] = SHARED_VALUES[name]
        else:
            raise AssertionError(f"{info.label}: the world has no value for the path parameter {name!r}; "
                                 "seed one in tests/support/world.py or name it in tests/support/requests.py")
    return values


def fill_path(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def _idempotent(body: Any) -> RequestSpec:
    return RequestSpec(json=body, headers={"Idempotency-Key": secrets.token_hex(8)})


def _dividend(_world: World, _caller: str) -> RequestSpec:
    today = utcnow().date()
    return _idempotent({"period_start": (today - timedelta(days=30)).isoformat(), "period_end": today.isoformat()})


def _pings(_world: World, _caller: str) -> RequestSpec:
    return RequestSpec(json={"pings": ping_batch(secrets.token_hex(6), [utcnow() - timedelta(minutes=2)])})


def _owntracks(_world: World, _caller: str) -> RequestSpec:
    lat, lng = SEED_PING_PLACE
    return RequestSpec(json={"_type": "location", "lat": lat, "lon": lng, "tst": int(utcnow().timestamp()) - 60,
                             "acc": 12, "tid": "ph"})


def _overland(_world: World, _caller: str) -> RequestSpec:
    lat, lng = SEED_PING_PLACE
    moment = (utcnow() - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return RequestSpec(json={"locations": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [lng, lat]},
                                            "properties": {"timestamp": moment, "horizontal_accuracy": 15}}]})


RELEASE_DAY_OF = {BOARD: 3, MODELLER: 4}
"""Each caller that may build asks for its own day, so no two successful requests overlap (409)."""


def _release(_world: World, caller: str) -> RequestSpec:
    start = dataset_day(RELEASE_DAY_OF.get(caller, 5))
    return _idempotent({"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()})


BODIES: dict[str, Callable[[World, str], RequestSpec]] = {
    "POST /v1/licences/{licence_id}/releases": _release,
    "POST /v1/pings": _pings,
    "POST /v1/ingest/owntracks": _owntracks,
    "POST /v1/ingest/overland": _overland,
    "POST /v1/accounts": lambda _w, _c: RequestSpec(json={"roles": ["member"], "display_name": "New account"}),
    "POST /v1/dividends": _dividend,
    "POST /v1/invitations": lambda _w, _c: RequestSpec(json={"count": 2, "note": "matrix", "valid_days": 7}),
    "POST /v1/licence-requests": lambda _w, _c: RequestSpec(json=request_body()),
    "POST /v1/licence-requests/{request_id}/votes": lambda _w, _c: RequestSpec(json={"decision": "abstain"}),
    "POST /v1/licences/{licence_id}/payments":
        lambda _w, _c: _idempotent({"amount_pence": 100, "reference": "BACS 1"}),
    "POST /v1/licences/{licence_id}/revoke": lambda _w, _c: RequestSpec(json={"reason": "matrix test"}),
    "PUT /v1/me/collection": lambda _w, _c: RequestSpec(json={"paused": False}),
    "PUT /v1/me/consents/{purpose}":
        lambda w, _c: RequestSpec(json={"given": True, "policy_version": w.policy_version[PURPOSE]}),
    "POST /v1/me/privacy-zones":
        lambda _w, _c: RequestSpec(json={"lat": 53.40, "lng": -2.98, "radius_m": 200, "label": "gym"}),
    "POST /v1/me/tokens": lambda _w, _c: RequestSpec(json={"label": "second phone"}),
    "POST /v1/members": lambda w, _c: RequestSpec(json={"accept_terms_version": w.app.state.settings.terms_version}),
    "POST /v1/members/{member_id}/payouts":
        lambda _w, _c: _idempotent({"amount_pence": 1, "reference": "BACS payout"}),
}

def request_for(world: World, info: RouteInfo, caller_name: str | None) -> RequestSpec | None:
    """The well-formed request, or None when the operation takes a body and has no entry in BODIES."""
    build = BODIES.get(info.label)
    if build is not None:
        return build(world, caller_name or "anonymous")
    return None if info.has_body else RequestSpec()
