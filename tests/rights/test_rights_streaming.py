"""Streamed downloads end their database work when the client goes away mid-download."""

from __future__ import annotations

import gc
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.requests import ClientDisconnect

from coop.accounts.roles import Role
from coop.ingest.cells import cell_of
from coop.ingest.codec import seal_ping
from coop.ingest.repository import insert_pings
from coop.ingest.validation import CleanPing
from coop.kit.db import session_scope
from tests.support.factories import Caller, make_account
from tests.support.ingest import member_secrets


@pytest.fixture
def no_garbage_collector() -> Iterator[None]:
    """Only explicit closing may end the body's transaction (not a lucky collection)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def _member_with_pings(app: FastAPI, count: int) -> Caller:
    member = make_account(app, Role.MEMBER)
    member_no, data_key = member_secrets(app, member.account_id)
    rows = []
    for n in range(count):
        ping = CleanPing(n, f"s{n}", 1_790_000_000_000 + n * 1000, 53.4, -2.9)
        rows.append((member_no, ping.client_id, ping.ts_ms, cell_of(ping.lat, ping.lng),
                     seal_ping(data_key, ping, member_no=member_no)))
    with session_scope(app.state.engine) as session:
        assert insert_pings(session, rows) == count
    return member


async def _download_then_disconnect(app: FastAPI, *, token: str, path: str, query: bytes) -> list[int]:
    """Run one request through the ASGI app; the client vanishes after two body chunks."""
    bodies: list[int] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            if len(bodies) == 2:
                raise OSError("connection reset by peer")
            bodies.append(len(message.get("body", b"")))

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
             "root_path": "", "headers": [(b"host", b"test"), (b"authorization", f"Bearer {token}".encode())],
             "client": ("127.0.0.1", 5000), "server": ("test", 80)}
    with pytest.raises((ClientDisconnect, OSError)):  # how the server learns the client went away
        await app(scope, receive, send)
    return bodies


@pytest.mark.parametrize(("path", "query"), [("/v1/me/pings", b"format=csv"), ("/v1/me/pings", b"format=geojson"),
                                             ("/v1/me/export", b"")])
def test_an_abandoned_download_returns_its_connection_at_once(
        app: FastAPI, client: TestClient, engine: Engine, no_garbage_collector: None, path: str, query: bytes) -> None:
    member = _member_with_pings(app, 6000)
    checked_out_before = engine.pool.checkedout()  # type: ignore[attr-defined]
    bodies = anyio.run(lambda: _download_then_disconnect(app, token=member.token, path=path, query=query))
    assert len(bodies) == 2 and bodies[1] > 0  # the body had started reading pings
    assert engine.pool.checkedout() == checked_out_before  # type: ignore[attr-defined]
    # and a whole download still works afterwards
    response = client.get(path, params=dict([query.decode().split("=")]) if query else None, headers=member.headers)
    assert response.status_code == 200 and response.text.count("s59") >= 1
