"""Sealing is crash-safe and race-safe: a failure or a kill mid-seal leaves no half-sealed bucket, two
sealers seal each bucket once, and `coop seal` killed with SIGKILL is simply run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from coop.kit.db import make_engine
from coop.kit.migrate import upgrade_to_head
from coop.kit.settings import Settings
from coop.tables import sealing
from tests.support.backlog import store_hourly_backlog
from tests.support.releases import at, cell10, consent_event, make_member, pings, siblings
from tests.support.server import scratch_database
from tests.support.tables import (
    MONDAY,
    approve,
    cell_rows,
    contributions,
    dataset,
    modeller,
    seal,
    sealed_buckets,
)

X9 = h3.cell_to_parent(cell10(), 9)
CELLS = siblings(X9)
PAIR = sorted(CELLS[:2], key=h3.str_to_int)  # where the population pings, in release order


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, k_floor=2, terms_version="2026-11",
                    privacy_budget_per_day=1e12, family_epsilon_per_day=1e9)


def _population(client: TestClient, app: FastAPI, *, time_bucket: str = "day", days: int = 3) -> str:
    licence = approve(client, app, modeller(app), dataset=dataset(time_bucket=time_bucket, days=days))
    for n in range(4):
        member = make_member(app, name=f"Resident {n}")
        consent_event(app, member, at=at(MONDAY - timedelta(days=7)))
        pings(app, member, [(at(MONDAY + timedelta(days=day), 9), CELLS[n % 2]) for day in range(days)])
    return str(licence["family_id"])


def test_a_failure_after_the_rows_are_written_leaves_nothing_sealed(
        client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    family_id = _population(client, app)
    real_upsert = sealing.upsert_contributions
    calls: list[int] = []

    def crash_after_writing(*args: Any, **kwargs: Any) -> None:
        real_upsert(*args, **kwargs)  # the bucket, cell and contribution rows are all written ...
        calls.append(1)
        raise RuntimeError("power cut")  # ... and the process dies before COMMIT

    monkeypatch.setattr(sealing, "upsert_contributions", crash_after_writing)
    with pytest.raises(RuntimeError, match="power cut"):
        seal(app, now=at(MONDAY + timedelta(days=3)))
    assert calls == [1]
    assert sealed_buckets(app, family_id) == [] and cell_rows(app, family_id) == []
    assert contributions(app, family_id) == {}

    monkeypatch.setattr(sealing, "upsert_contributions", real_upsert)
    seal(app, now=at(MONDAY + timedelta(days=3)))
    assert sealed_buckets(app, family_id) == ["2026-11-02T00:00:00Z"]
    assert cell_rows(app, family_id) == [("2026-11-02T00:00:00Z", cell, 9, 2) for cell in PAIR]
    assert sorted(contributions(app, family_id).values()) == [1, 1, 1, 1]


def test_two_sealers_racing_seal_each_bucket_once(client: TestClient, app: FastAPI) -> None:
    family_id = _population(client, app, time_bucket="hour", days=3)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            seal(app)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    buckets = sealed_buckets(app, family_id)
    assert len(buckets) == len(set(buckets)) == 26 * 24  # 2026-11-02 .. 2026-11-27, every hour, once
    # Each member pinged once an hour on three days: one bucket a day each, counted once however the race went.
    assert sorted(contributions(app, family_id).values()) == [1] * 12
    assert cell_rows(app, family_id) == [(f"2026-11-0{2 + day}T09:00:00Z", cell, 9, 2)
                                         for day in range(3) for cell in PAIR]


def _consistent(engine: Engine, family_id: str) -> tuple[int, dict[str, int]]:
    """Every sealed row belongs to a sealed bucket, and every member's recorded input equals the sealed
    buckets their pings fall in; returns (sealed buckets, buckets per member)."""
    with engine.connect() as connection:
        sealed = {row[0] for row in connection.execute(sa.text(
            "SELECT bucket_start FROM sealed_bucket WHERE family_id = :f"), {"f": family_id})}
        orphans = connection.execute(sa.text(
            "SELECT count(*) FROM sealed_cell AS c WHERE c.family_id = :f AND NOT EXISTS (SELECT 1 FROM "
            "sealed_bucket AS b WHERE b.family_id = c.family_id AND b.bucket_start = c.bucket_start)"),
            {"f": family_id}).scalar_one()
        units = {str(member_id): int(total) for member_id, total in connection.execute(sa.text(
            "SELECT member_id, sum(buckets) FROM sealed_contribution WHERE family_id = :f GROUP BY member_id"),
            {"f": family_id})}
    assert orphans == 0
    return len(sealed), units


def _run_cli(env: dict[str, str], *args: str, capture: bool = False) -> subprocess.Popen[str]:
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "coop.cli", "seal", *args], env=env, text=True,
                            stdout=output, stderr=output)


def test_coop_seal_killed_mid_seal_leaves_no_half_sealed_bucket_and_a_rerun_completes(
        database_url: str, tmp_path: Path) -> None:
    """A real SIGKILL of `coop seal` each time it has committed more of an hourly backlog; the invariants
    hold after each kill, and a final run seals everything once, with the exact oracle's input counts."""
    start = datetime.now(UTC).date() - timedelta(days=9)
    with scratch_database(database_url, tmp_path) as url:
        upgrade_to_head(url)
        engine = make_engine(url)
        try:
            family_id, expected_units = store_hourly_backlog(engine, members=80, days=7, start=start)
            env = {**os.environ, "COOP_DATABASE_URL": url, "COOP_DATA_DIR": str(tmp_path), "COOP_K_FLOOR": "2"}
            kills = 0
            for _ in range(3):
                process = _run_cli(env)
                sealed_before = _consistent(engine, family_id)[0]
                deadline = time.monotonic() + 120
                while process.poll() is None and time.monotonic() < deadline:
                    if _consistent(engine, family_id)[0] > sealed_before:  # it committed a chunk: kill it now
                        process.send_signal(signal.SIGKILL)
                        kills += 1
                        break
                    time.sleep(0.005)
                process.wait(timeout=60)
                _consistent(engine, family_id)
            done = _run_cli(env, "--json", capture=True)
            out, err = done.communicate(timeout=600)
            assert done.returncode == 0, err
            buckets, units = _consistent(engine, family_id)
            [report] = json.loads(out)
            through = datetime.fromisoformat(report["sealed_through"])
            assert buckets == (through - datetime(start.year, start.month, start.day, tzinfo=UTC)) // timedelta(hours=1)
            assert units == expected_units and kills >= 1
            assert set(report) == {"family_id", "kind", "purpose", "time_bucket", "resolution", "buckets_sealed",
                                   "sealed_through"}
        finally:
            engine.dispose()
