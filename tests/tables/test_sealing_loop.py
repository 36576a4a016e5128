"""`coop serve` runs the sealing loop: a family with a backlog gets sealed without anyone running
`coop seal`, and a test app (no loop) never seals by itself."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from coop.kit.db import make_engine
from coop.kit.migrate import upgrade_to_head
from tests.support.backlog import store_hourly_backlog
from tests.support.server import Server, scratch_database


def _sealed(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM sealed_bucket")).scalar_one())
    finally:
        engine.dispose()


def test_coop_serve_seals_due_buckets_in_the_background(database_url: str, tmp_path: Path) -> None:
    start = datetime.now(UTC).date() - timedelta(days=4)
    with scratch_database(database_url, tmp_path) as url:
        upgrade_to_head(url)
        engine = make_engine(url)
        try:
            store_hourly_backlog(engine, members=5, days=2, start=start)
        finally:
            engine.dispose()
        server = Server(database_url=url, data_dir=tmp_path, extra_env={"COOP_SEAL_INTERVAL_S": "0.5"})
        server.start()
        try:
            deadline = time.monotonic() + 60
            while _sealed(url) < 48 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _sealed(url) >= 48, server.log_tail()  # both days of the backlog, at least
            with server.client() as http:
                assert http.get("/v1/privacy-budget").json()["spent_epsilon_per_day"] == 1e9
        finally:
            server.kill()


def test_the_test_app_runs_no_sealing_loop(client: TestClient) -> None:
    assert getattr(client.app.state, "sealing_loop", None) is None  # type: ignore[attr-defined]
