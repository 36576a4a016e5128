"""Limits, generated from the route table where they apply to many operations.

- Body size: every operation that takes a body answers 413 to a body over ``max_body_bytes``: declared
  (Content-Length) before authentication; streamed (chunked) as soon as it passes the limit, never read
  in full (an anonymous caller may get its 401 first).
- Pagination: every list operation (one with ``limit`` and ``cursor`` query parameters) answers 422 to
  ``limit`` 0, 1001, -1 or text, and to a malformed or crafted cursor (not base64, not JSON, not a list,
  wrong arity, wrong types, out-of-range integers, NUL characters): never a 5xx, on either database.
- Batches: more than ``max_batch`` (1000) pings or Overland points is 422; an empty native batch too.
- Rate limits: sign-up per address and every ingest route per token, 429 with an integer ``Retry-After``.
- Timeouts: PostgreSQL cancels a statement over ``db_statement_timeout_ms`` (the API answers 503 with
  ``Retry-After``); SQLite writers wait ``busy_timeout`` (30 s) for the lock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from coop.kit.crypto import b64url
from coop.kit.db import is_sqlite, make_engine
from coop.kit.errors import InvalidInput
from coop.kit.pagination import encode_cursor, keyset_page
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from coop.ledger.models import LedgerEntry
from tests.support.factories import make_account
from tests.support.figures import count
from tests.support.requests import fill_path, path_values
from tests.support.routes import RouteInfo, routes, scratch_app
from tests.support.world import CALLER_NAMES, ROLE_OF, World, build_world, ping_batch

ROUTES = routes(scratch_app())
BODY_ROUTES = [info for info in ROUTES if info.has_body]
LIST_ROUTES = [info for info in ROUTES if info.method == "GET" and {"limit", "cursor"} <= {
    param.alias for param in info.route.dependant.query_params}]

BAD_LIMITS = ["0", "1001", "-1", "ten", "1e3", "99999999999999999999999"]
BAD_VALUES: list[Any] = [True, 1.5, None, {}, [], 2**70, -(2**70), 2**63, "a\x00b"]


def _cursor(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def crafted_cursors() -> Iterator[str]:
    yield "!!!not-base64!!!"
    yield b64url(b"\xff\xfe not utf-8")
    yield b64url(b"{not json")
    yield _cursor({"a": 1})
    yield _cursor("a string")
    yield _cursor([])
    yield _cursor(["x"] * 7)
    yield b64url(b"[" * 300 + b"]" * 300)
    for value in BAD_VALUES:
        for arity in (1, 2, 3):
            yield _cursor([value] * arity)


def _caller_for(world: World, info: RouteInfo) -> dict[str, str]:
    for name in CALLER_NAMES:
        if ROLE_OF[name] in info.roles:
            return world.headers(name)
    return {}


def test_every_list_operation_is_found() -> None:
    labels = {info.label for info in LIST_ROUTES}
    assert {"GET /v1/me/tokens", "GET /v1/ledger/entries", "GET /v1/licences"} <= labels


@pytest.mark.parametrize("info", [pytest.param(info, id=info.label) for info in BODY_ROUTES])
def test_oversized_body_is_413_on_every_operation_with_a_body(info: RouteInfo, client: TestClient,
                                                                app: FastAPI) -> None:
    limit = app.state.settings.max_body_bytes
    path = fill_path(info.path, {name: str(uuid.uuid4()) for name in info.path_parameters})
    big = b'{"x": "' + b"a" * limit + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    member = make_account(app, *info.roles)
    for headers in ({}, member.headers):
        declared = client.request(info.method, path, content=big,
                                  headers={"Content-Type": "application/json", **headers})
        streamed = client.request(info.method, path, content=chunks(),
                                  headers={"Content-Type": "application/json", **headers})
        # A declared length is refused before anything else; a streamed body is refused once it passes
        # the limit, unless the route turns an anonymous caller away (401) before reading the body at all.
        allowed = {"declared": {413}, "streamed": {413} if headers else {401, 413}}
        for kind, response in (("declared", declared), ("streamed", streamed)):
            assert response.status_code in allowed[kind], (
                f"{info.label} ({kind}): {response.status_code} {response.text[:200]}")
            assert response.headers["content-type"].startswith("application/problem+json")
            count("limits", "oversized bodies refused")


@pytest.mark.slow
def test_every_list_operation_refuses_bad_limits_and_crafted_cursors(app: FastAPI, client: TestClient) -> None:
    world = build_world(app, client)
    for info in LIST_ROUTES:
        path = fill_path(info.path, path_values(world, info))
        headers = _caller_for(world, info)
        assert client.get(path, headers=headers).status_code == 200, info.label
        for limit in BAD_LIMITS:
            response = client.get(path, params={"limit": limit}, headers=headers)
            assert response.status_code == 422, f"{info.label} limit={limit}: {response.status_code}"
            count("limits", "bad limits refused")
        for cursor in crafted_cursors():
            response = client.get(path, params={"cursor": cursor}, headers=headers)
            assert response.status_code == 422, (
                f"{info.label} cursor={cursor!r}: {response.status_code} {response.text[:200]}")
            assert response.headers["content-type"].startswith("application/problem+json")
            count("limits", "crafted cursors refused")


def test_pages_walk_every_item_once(app: FastAPI, client: TestClient) -> None:
    member = make_account(app, *(ROLE_OF[name] for name in ("member",)))
    for n in range(5):
        assert client.post("/v1/me/tokens", json={"label": f"t{n}"}, headers=member.headers).status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/me/tokens", params=params, headers=member.headers).json()
        seen.extend(item["token_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6


@pytest.mark.parametrize("created_at", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "not a time"])
def test_cursor_time_that_overflows_in_utc_is_422(created_at: str, app: FastAPI, client: TestClient) -> None:
    member = make_account(app, ROLE_OF["member"])
    response = client.get("/v1/me/tokens", params={"cursor": _cursor([created_at, "x"])}, headers=member.headers)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("seq", [2**31, -(2**31) - 1, 2**70, True])
def test_keyset_page_refuses_integers_the_column_cannot_hold(seq: Any, engine: Engine) -> None:
    """coop/kit/pagination.py: an out-of-range integer never reaches the database (PostgreSQL would raise)."""
    with Session(engine) as session, pytest.raises(InvalidInput, match="malformed cursor"):
        keyset_page(session, select(LedgerEntry), order=[col(LedgerEntry.seq)], limit=10,
                    cursor=encode_cursor([seq]))


def test_keyset_page_accepts_the_largest_integer_the_column_holds(engine: Engine) -> None:
    with Session(engine) as session:
        rows, next_cursor = keyset_page(session, select(LedgerEntry), order=[col(LedgerEntry.seq)], limit=10,
                                        cursor=encode_cursor([2**31 - 1]))
    assert rows == [] and next_cursor is None


def test_signup_rate_limit_is_429_with_retry_after(client: TestClient, app: FastAPI) -> None:
    terms = app.state.settings.terms_version
    limit = app.state.settings.signup_rate_per_hour
    statuses = [client.post("/v1/members", json={"accept_terms_version": terms}).status_code
                for _ in range(limit + 2)]
    assert statuses == [201] * limit + [429, 429]
    refused = client.post("/v1/members", json={"accept_terms_version": terms})
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 3600


def test_statement_timeout_or_busy_timeout_is_set(database_url: str) -> None:
    """PostgreSQL: a statement over the limit is cancelled; SQLite: writers wait 30 s for the lock."""
    engine = make_engine(database_url, statement_timeout_ms=200)
    try:
        with engine.connect() as connection:
            if is_sqlite(database_url):
                assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            else:
                assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "200ms"
                with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                    connection.exec_driver_sql("SELECT pg_sleep(2)")
    finally:
        engine.dispose()


def test_app_sessions_carry_the_configured_statement_timeout(database_url: str, settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"db_statement_timeout_ms": 1234}))
    with app.state.engine.connect() as connection:
        if is_sqlite(database_url):
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        else:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "1234ms"


def test_a_cancelled_statement_is_a_503_with_retry_after(app: FastAPI) -> None:
    """api/problems.py maps a database that is busy or cancelled a statement to 503, documented on every
    operation, never a bare 500."""

    def slow() -> None:
        raise sa.exc.OperationalError("SELECT pg_sleep(60)", {}, Exception("canceling statement due to "
                                                                         "statement timeout"))

    app.add_api_route("/slow", slow)
    with TestClient(app, raise_server_exceptions=False) as raw:
        response = raw.get("/slow")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "pg_sleep" not in response.text
    documented = app.openapi()["paths"]["/v1/me"]["get"]["responses"]
    assert "503" in documented


INGEST_BODIES: dict[str, Any] = {
    "/v1/pings": lambda n: {"pings": ping_batch("b", [utcnow() - timedelta(minutes=1)] * n)},
    "/v1/ingest/overland": lambda n: {"locations": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-2.99, 53.4]},
         "properties": {"timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%S+0000")}}] * n},
}


@pytest.mark.parametrize("path", sorted(INGEST_BODIES))
def test_batches_over_the_limit_are_422(path: str, app: FastAPI, client: TestClient) -> None:
    member = make_account(app, ROLE_OF["member"])
    limit = app.state.settings.max_batch
    response = client.post(path, json=INGEST_BODIES[path](limit + 1), headers=member.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if path == "/v1/pings":
        assert client.post(path, json=INGEST_BODIES[path](0), headers=member.headers).status_code == 422


@pytest.mark.parametrize("path", ["/v1/pings", "/v1/ingest/owntracks", "/v1/ingest/overland"])
def test_every_ingest_route_is_rate_limited_per_token_with_retry_after(path: str, settings: Settings) -> None:
    limited = create_app(settings.model_copy(update={"ingest_rate_per_minute": 2}))
    member, other = make_account(limited, ROLE_OF["member"]), make_account(limited, ROLE_OF["member"])
    body = {"/v1/pings": {"pings": []}, "/v1/ingest/owntracks": {"_type": "lwt"},
            "/v1/ingest/overland": {"locations": []}}[path]
    with TestClient(limited) as client:
        statuses = [client.post(path, json=body, headers=member.headers).status_code for _ in range(3)]
        assert statuses[2] == 429 and 429 not in statuses[:2], statuses
        refused = client.post(path, json=body, headers=member.headers)
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
        assert client.post(path, json=body, headers=other.headers).status_code != 429
