"""A seeded world for generated tests: one caller per role, two of each owning role, and one resource of
each kind per owner, so that every path parameter of every route can be filled with a real value.

Callers: ``member`` and ``other_member``, ``modeller`` and ``other_modeller`` (each owning their own
resources), ``board``, ``treasurer``, ``admin``; ``None`` is the anonymous caller. Every owner's
resources carry *secret markers* (random strings in names, labels, titles): a response to anyone who
may not see that owner's data must contain none of them.

Invariant: the world is built through the HTTP API wherever the API can build it, so it stays valid as
the domains change; only history the API cannot make (a release and a payment in a past period, for a
dividend that pays the member) is inserted with the ledger factories.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from coop.kit.timeutil import utcnow
from tests.support.factories import Caller, make_account
from tests.support.ledger import make_release, noon, pay_licence
from tests.support.licensing import request_body, vote

MEMBER, OTHER_MEMBER = "member", "other_member"
MODELLER, OTHER_MODELLER = "modeller", "other_modeller"
BOARD, TREASURER, ADMIN = "board", "treasurer", "admin"
CALLER_NAMES = (MEMBER, OTHER_MEMBER, MODELLER, OTHER_MODELLER, BOARD, TREASURER, ADMIN)
ROLE_OF = {MEMBER: Role.MEMBER, OTHER_MEMBER: Role.MEMBER, MODELLER: Role.MODELLER,
           OTHER_MODELLER: Role.MODELLER, BOARD: Role.BOARD, TREASURER: Role.TREASURER, ADMIN: Role.ADMIN}
OTHER_OF = {MEMBER: OTHER_MEMBER, OTHER_MEMBER: MEMBER, MODELLER: OTHER_MODELLER, OTHER_MODELLER: MODELLER}
PURPOSE = "transport-planning"
LICENCE_FEE_PENCE = 150_000


def marker(kind: str) -> str:
    return f"{kind}-secret-{secrets.token_hex(6)}"


@dataclass
class Owned:
    """The resources one caller owns, by path-parameter name, and the markers that must not leak."""

    resources: dict[str, str] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)
    """Seen by the owner only (a member's zones, receipts, tokens, name)."""
    staff_visible: set[str] = field(default_factory=set)
    """Also seen by the board and the treasurer (a member's pseudonymous id in the ledger; a modeller's
    requests and licences), never by another member, another modeller or the admin."""
    member_visible: set[str] = field(default_factory=set)
    """A modeller's organisation, licence and release ids: shown to staff and, by design, to the members
    whose data a release used (``GET /v1/me/usage``); never to another modeller or the admin."""


@dataclass
class World:
    app: FastAPI
    client: TestClient
    callers: dict[str, Caller]
    owned: dict[str, Owned]
    shared: dict[str, str]
    """Path parameters that name no one's private resource (a purpose, a dividend, a member to pay)."""
    policy_version: dict[str, str]

    def headers(self, caller_name: str | None) -> dict[str, str]:
        return {} if caller_name is None else self.callers[caller_name].headers

    def secrets_hidden_from(self, caller_name: str | None) -> set[str]:
        """Every marker ``caller_name`` may not see: others' tokens and private data, and unless the
        caller is staff (board, treasurer) the others' staff-visible data too."""
        hidden = {caller.token for name, caller in self.callers.items() if name != caller_name}
        for owner, owned in self.owned.items():
            if owner == caller_name:
                continue
            hidden |= owned.private
            if caller_name not in (BOARD, TREASURER):
                hidden |= owned.staff_visible
            if caller_name not in (BOARD, TREASURER, MEMBER, OTHER_MEMBER):
                hidden |= owned.member_visible
        return hidden


def _ok(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or (200, 201)), response.text
    body: dict[str, Any] = response.json()
    return body


SEED_PING_PLACE = (53.4084, -2.9916)
"""Liverpool city centre: both members ping here at the same times, so a release (k=2) has a row."""
DATASET_START = utcnow().date() - timedelta(days=12)
"""The seeded licences' dataset period is [DATASET_START, +7 days), hourly (relative to today, so the
seeded pings stay inside the retention window whatever the date)."""
DATASET = {"start": DATASET_START.isoformat(), "end": (DATASET_START + timedelta(days=7)).isoformat()}

OD_DATASET = {**DATASET, "kind": "od", "time_bucket": "day"}
"""Each modeller also holds a paid od licence (daily), so the od file routes have a release to serve."""


def dataset_day(offset: int) -> date:
    return DATASET_START + timedelta(days=offset)


SEED_PING_TIMES = [datetime.combine(dataset_day(1), time(8, minute), tzinfo=UTC) for minute in (5, 20, 35)]


def ping_batch(prefix: str, times: list[datetime], *, place: tuple[float, float] = SEED_PING_PLACE) -> list[dict[str, Any]]:
    """Native pings with ids ``<prefix>-<n>`` at ``place`` (accuracy 10 m)."""
    lat, lng = place
    return [{"id": f"{prefix}-{n}", "ts": moment.isoformat().replace("+00:00", "Z"), "lat": lat, "lng": lng,
             "accuracy_m": 10.0} for n, moment in enumerate(times)]


def _display_name(client: TestClient, caller: Caller) -> str:
    name: str = _ok(client.get("/v1/me", headers=caller.headers))["display_name"]
    return name


def _seed_member(client: TestClient, member: Caller, owned: Owned, policy_version: str) -> None:
    body = _ok(client.put(f"/v1/me/consents/{PURPOSE}", json={"given": True, "policy_version": policy_version},
                          headers=member.headers))
    owned.resources["receipt_id"] = body["receipt_id"]
    label = marker("zone")
    zone = _ok(client.post("/v1/me/privacy-zones", json={"lat": 53.45, "lng": -2.95, "radius_m": 100,
                                                         "label": label}, headers=member.headers), 201)
    owned.resources["zone_id"] = zone["zone_id"]
    token_label = marker("token")
    token = _ok(client.post("/v1/me/tokens", json={"label": token_label}, headers=member.headers), 201)
    owned.resources["token_id"] = token["token_id"]
    owned.private |= {label, token_label, body["receipt_id"], zone["zone_id"], token["token_id"]}
    ping_prefix = marker("ping")
    stored = _ok(client.post("/v1/pings", json={"pings": ping_batch(ping_prefix, SEED_PING_TIMES)},
                             headers=member.headers))
    assert stored["accepted"] == len(SEED_PING_TIMES), stored
    owned.private.add(ping_prefix)


def _approve(client: TestClient, voters: list[Caller], modeller: Caller, title: str,
             organisation: str, dataset: dict[str, str] = DATASET) -> tuple[str, str]:
    request = _ok(client.post("/v1/licence-requests",
                              json=request_body(title=title, organisation=organisation, dataset=dataset),
                              headers=modeller.headers), 201)
    for voter in voters:
        assert vote(client, voter, request["request_id"], "approve").status_code == 201
    read = _ok(client.get(f"/v1/licence-requests/{request['request_id']}", headers=modeller.headers))
    return request["request_id"], read["licence_id"]


def _seed_modeller(client: TestClient, *, modeller: Caller, voters: list[Caller], treasurer: Caller,
                   owned: Owned) -> None:
    organisation, title = marker("org"), marker("title")
    submitted = _ok(client.post("/v1/licence-requests",
                                json=request_body(title=title, organisation=organisation, dataset=DATASET),
                                headers=modeller.headers), 201)
    owned.resources["request_id"] = submitted["request_id"]
    _, licence_id = _approve(client, voters, modeller, marker("title"), organisation)
    owned.resources["licence_id"] = licence_id
    _ok(client.post(f"/v1/licences/{licence_id}/payments", json={"amount_pence": LICENCE_FEE_PENCE,
                                                                 "reference": marker("ref")},
                    headers=treasurer.headers), 201)
    _, od_licence_id = _approve(client, voters, modeller, marker("title"), organisation, dataset=OD_DATASET)
    owned.resources["od_licence_id"] = od_licence_id
    _ok(client.post(f"/v1/licences/{od_licence_id}/payments", json={"amount_pence": LICENCE_FEE_PENCE,
                                                                    "reference": marker("ref")},
                    headers=treasurer.headers), 201)
    _, unpaid_licence_id = _approve(client, voters, modeller, marker("title"), organisation)
    owned.resources["unpaid_licence_id"] = unpaid_licence_id
    owned.staff_visible |= {title, submitted["request_id"], unpaid_licence_id}
    owned.member_visible |= {organisation, licence_id, od_licence_id}


def _seed_dividend(world: World) -> None:
    """A closed period in which the member's data earned a dividend (so the member has a balance)."""
    today = utcnow().date()
    start = today - timedelta(days=90)
    end = today - timedelta(days=60)
    modeller, member = world.callers[MODELLER], world.callers[MEMBER]
    resources = world.owned[MODELLER].resources
    pay_licence(world.app, licence_id=resources["unpaid_licence_id"], amount_pence=10_000, received_at=noon(start),
                recorded_by=world.callers[TREASURER].account_id)
    make_release(world.app, licence_id=resources["licence_id"], requested_by=modeller.account_id, built_at=noon(start),
                 units={member.account_id: 3})
    dividend = _ok(world.client.post("/v1/dividends", json={"period_start": start.isoformat(),
                                                           "period_end": end.isoformat()},
                                     headers=world.callers[TREASURER].headers), 201)
    world.shared["dividend_id"] = dividend["dividend_id"]


RELEASE_PERIOD = (dataset_day(1).isoformat(), dataset_day(2).isoformat())
"""Inside the seeded licences' dataset period, the day of the seeded pings."""


def _seed_releases(world: World) -> None:
    """A ready release under each modeller's paid presence and od licences, once the co-op has sealed every due bucket of
    the licences' family (the members' pings predate their consent, so the tables hold no row of theirs)."""
    from api.releases import release_worker
    from coop.tables.service import seal_due

    seal_due(world.app.state.engine, world.app.state.settings, now=utcnow())

    for name in (MODELLER, OTHER_MODELLER):
        for licence, release in (("licence_id", "release_id"), ("od_licence_id", "od_release_id")):
            licence_id = world.owned[name].resources[licence]
            queued = _ok(world.client.post(f"/v1/licences/{licence_id}/releases",
                                           json={"start": RELEASE_PERIOD[0], "end": RELEASE_PERIOD[1]},
                                           headers=world.callers[name].headers), 202)
            world.owned[name].resources[release] = queued["release_id"]
        world.owned[name].member_visible |= {world.owned[name].resources["release_id"],
                                             world.owned[name].resources["od_release_id"]}
    release_worker(world.app).wait_for_builds()
    for name in (MODELLER, OTHER_MODELLER):
        for release in ("release_id", "od_release_id"):
            release_id = world.owned[name].resources[release]
            manifest = _ok(world.client.get(f"/v1/releases/{release_id}", headers=world.callers[name].headers))
            assert manifest["status"] == "ready", manifest


SEEDERS: list[Callable[[World], None]] = [_seed_dividend, _seed_releases]
"""Extra seeding steps, run in order after the owners' resources exist (domains add theirs here)."""


def build_world(app: FastAPI, client: TestClient) -> World:
    callers = {name: make_account(app, ROLE_OF[name], name=marker(name), organisation=marker("account-org"))
               for name in CALLER_NAMES}
    owned = {name: Owned(staff_visible={callers[name].account_id})
             for name in (MEMBER, OTHER_MEMBER, MODELLER, OTHER_MODELLER)}
    for name in (MEMBER, OTHER_MEMBER):
        owned[name].private.add(_display_name(client, callers[name]))
    for name in (MODELLER, OTHER_MODELLER):
        owned[name].staff_visible.add(_display_name(client, callers[name]))
    purposes = {p["code"]: p["policy_version"] for p in _ok(client.get("/v1/purposes"))["items"]}
    world = World(app=app, client=client, callers=callers, owned=owned,
                  shared={"purpose": PURPOSE, "member_id": callers[MEMBER].account_id},
                  policy_version=purposes)
    for name in (MEMBER, OTHER_MEMBER):
        _seed_member(client, callers[name], owned[name], purposes[PURPOSE])
    voters = [make_account(app, Role.BOARD, name="Voter") for _ in range(app.state.settings.board_quorum)]
    for name in (MODELLER, OTHER_MODELLER):
        _seed_modeller(client, modeller=callers[name], voters=voters, treasurer=callers[TREASURER],
                       owned=owned[name])
    for seed in SEEDERS:
        seed(world)
    return world
