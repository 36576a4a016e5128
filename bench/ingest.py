"""Ingest throughput: the HTTP API (``coop serve``, one worker) against a direct bulk insert.

For SQLite and for PostgreSQL (a fresh database each): members with consent are created, the real
server is started, and batches of 500 pings are posted from this process with httpx. The rows the API
stored are then read back and, after emptying the table, inserted again straight into the same table
by the best bulk path of the database (SQLite: ``executemany`` in one transaction per batch;
PostgreSQL: binary ``COPY`` per batch). Both phases commit once per batch of 500. The API is measured
with one client connection (each batch waits for the previous answer) and with ``COOP_BENCH_CLIENTS``
concurrent connections (default 4, like several phones at once). Prints pings/s, the server's CPU time
per batch, and the ratio API / direct (target: at least 0.5).

Environment: ``COOP_BENCH_BATCHES`` (default 60 per round), ``COOP_BENCH_ROUNDS`` (default 5; each round measures the
API and then the direct path, and the median of the per-round ratios is reported), ``COOP_BENCH_PG_URL`` (a database this script may drop and create;
default ``postgresql+psycopg://postgres@127.0.0.1:5432/coop_bench_ingest``), ``COOP_BENCH_ONLY``
(``sqlite`` or ``postgresql``), ``COOP_BENCH_SERVER_PREFIX`` (a command put before ``coop serve``, for
a profiler: ``py-spy record --format raw -o server.txt --``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
import sqlalchemy as sa

from coop.accounts.roles import Role
from coop.accounts.service import create_account
from coop.kit.crypto import b64url
from coop.kit.db import make_engine, session_scope
from coop.kit.migrate import upgrade_to_head
from coop.kit.timeutil import rfc3339, utcnow
from migrations.seed import POLICY_VERSION

BATCH_SIZE = 500
MEMBERS = 20
BATCHES = int(os.environ.get("COOP_BENCH_BATCHES", "60"))
ROUNDS = int(os.environ.get("COOP_BENCH_ROUNDS", "5"))
CLIENTS = int(os.environ.get("COOP_BENCH_CLIENTS", "4"))
PG_URL = os.environ.get("COOP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/coop_bench_ingest")
BIN = Path(sys.executable).parent
PingRow = tuple[int, str, int, int, bytes]


@dataclass(frozen=True)
class Member:
    account_id: str
    token: str


@dataclass
class Result:
    """Per round: the API rate for each number of clients, and the direct rate measured right after."""

    database: str
    api_rates: list[dict[int, float]]
    direct_rates: list[float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(url: str, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "COOP_DATABASE_URL": url, "COOP_DATA_DIR": str(data_dir),
            "COOP_MASTER_KEY": b64url(os.urandom(32)), "COOP_SIGNING_KEY": b64url(os.urandom(32)),
            "COOP_INGEST_RATE_PER_MINUTE": "100000000"}


def create_members(url: str, env: dict[str, str]) -> list[Member]:
    """Members with one purpose given, created through the service layer."""
    from consent.models import ConsentEvent
    from coop.kit.crypto import load_keyring
    from coop.kit.settings import Settings

    settings = Settings(database_url=url, data_dir=Path(env["COOP_DATA_DIR"]),
                        master_key=env["COOP_MASTER_KEY"], signing_key=env["COOP_SIGNING_KEY"])
    keyring = load_keyring(settings)
    engine = make_engine(url)
    members = []
    with session_scope(engine) as session:
        for n in range(MEMBERS):
            account, issued = create_account(session, roles=[Role.MEMBER], display_name=f"bench {n}",
                                             organisation=None, keyring=keyring)
            session.add(ConsentEvent(id=str(uuid.uuid4()), member_id=account.id, purpose_code="transport-planning",
                                     state="given", policy_version=POLICY_VERSION, at=utcnow(), method="api",
                                     receipt_id=str(uuid.uuid4()), receipt={}, jws="bench"))
            members.append(Member(account_id=account.id, token=issued.token))
    engine.dispose()
    return members


def make_batches(members: list[Member], *, round_no: int) -> list[tuple[Member, bytes]]:
    """``BATCHES`` JSON bodies of ``BATCH_SIZE`` typical phone pings, round-robin over members."""
    rng = random.Random(round_no)
    now = utcnow()
    batches = []
    for b in range(BATCHES):
        member = members[b % len(members)]
        pings = []
        for n in range(BATCH_SIZE):
            moment = now - timedelta(seconds=rng.uniform(60, 86_400 * 7))
            pings.append({"id": f"r{round_no}-b{b}-{n}", "ts": rfc3339(moment),
                          "lat": round(53.35 + rng.random() * 0.15, 6), "lng": round(-3.05 + rng.random() * 0.2, 6),
                          "accuracy_m": round(rng.uniform(3, 60), 1), "speed_mps": round(rng.uniform(0, 15), 2),
                          "battery": round(rng.random(), 2)})
        batches.append((member, json.dumps({"pings": pings}).encode()))
    return batches


def server_cpu_seconds(process: psutil.Process) -> float:
    """CPU time of the server (and of a profiler's child, when one is in front)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


@contextmanager
def running_server(env: dict[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    prefix = os.environ.get("COOP_BENCH_SERVER_PREFIX", "").split()  # e.g. "py-spy record -o x.svg --"
    process = subprocess.Popen([*prefix, str(BIN / "coop"), "serve", "--port", str(port), "--log-level", "warning"],
                               env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield base, psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGINT)  # a profiler in front writes its output on SIGINT
        process.wait(timeout=60)


def _post_share(base: str, batches: list[tuple[Member, bytes]], start: threading.Barrier) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        client.get("/healthz")
        start.wait()
        for member, body in batches:
            response = client.post("/v1/pings", content=body, headers={
                "Authorization": f"Bearer {member.token}", "Content-Type": "application/json"})
            if response.status_code != 200 or response.json()["accepted"] != BATCH_SIZE:
                raise RuntimeError(f"batch not accepted: {response.status_code} {response.text[:300]}")


def post_batches(base: str, batches: list[tuple[Member, bytes]], *, clients: int) -> float:
    """Seconds to post every batch over ``clients`` keep-alive connections; checks each was accepted."""
    start = threading.Barrier(clients + 1)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(_post_share, base, batches[n::clients], start) for n in range(clients)]
        start.wait()
        started = time.perf_counter()
        for future in futures:
            future.result()
        return time.perf_counter() - started


def stored_rows(url: str) -> list[PingRow]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT member_no, client_id, ts_ms, cell, blob FROM ping ORDER BY id")).all()
    engine.dispose()
    return [(int(r[0]), str(r[1]), int(r[2]), int(r[3]), bytes(r[4])) for r in rows]


def sqlite_path(url: str) -> str:
    return url.split("///", 1)[1]


def empty_ping_table(url: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as connection:
            connection.execute("DELETE FROM ping")
        with sqlite3.connect(sqlite_path(url)) as connection:  # each phase starts with an empty WAL
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with psycopg.connect(libpq_url(url), autocommit=True) as connection:
            connection.execute("TRUNCATE ping RESTART IDENTITY")
            connection.execute("VACUUM ANALYZE ping")


def direct_sqlite(url: str, rows: list[PingRow]) -> float:
    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=30000"):
        connection.execute(f"PRAGMA {pragma}")
    sql = "INSERT INTO ping (member_no, client_id, ts_ms, cell, blob) VALUES (?, ?, ?, ?, ?)"
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH_SIZE):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(sql, rows[start:start + BATCH_SIZE])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def direct_postgres(url: str, rows: list[PingRow]) -> float:
    with psycopg.connect(libpq_url(url)) as connection:
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH_SIZE):
            with connection.cursor() as cursor, cursor.copy(
                    "COPY ping (member_no, client_id, ts_ms, cell, blob) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text", "int8", "int8", "bytea"])
                for row in rows[start:start + BATCH_SIZE]:
                    copy.write_row(row)
            connection.commit()
        return time.perf_counter() - started


def recreate_postgres_database(url: str, *, drop_only: bool = False) -> None:
    base, _, name = libpq_url(url).rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            connection.execute(f'CREATE DATABASE "{name}"')


def bench_database(name: str, url: str, data_dir: Path) -> Result:
    upgrade_to_head(url)
    env = environment(url, data_dir)
    members = create_members(url, env)
    direct = direct_sqlite if name == "sqlite" else direct_postgres
    result = Result(database=name, api_rates=[], direct_rates=[])
    with running_server(env) as (base, server):
        for round_no in range(ROUNDS):
            rows: list[PingRow] = []
            round_rates: dict[int, float] = {}
            for clients in sorted({1, CLIENTS}):
                batches = make_batches(members, round_no=round_no * 100 + clients)
                count = len(batches) * BATCH_SIZE
                empty_ping_table(url)
                cpu_before = server_cpu_seconds(server)
                api_rate = count / post_batches(base, batches, clients=clients)
                cpu_ms = (server_cpu_seconds(server) - cpu_before) * 1000 / len(batches)
                rows = stored_rows(url)
                assert len(rows) == count
                round_rates[clients] = api_rate
                print(f"  {name} round {round_no + 1}: api, {clients} client(s): {api_rate:,.0f} pings/s "
                      f"(server CPU {cpu_ms:.1f} ms per batch)", flush=True)
            empty_ping_table(url)
            direct_rate = len(rows) / direct(url, rows)
            assert len(stored_rows(url)) == len(rows)
            result.api_rates.append(round_rates)
            result.direct_rates.append(direct_rate)
            print(f"  {name} round {round_no + 1}: direct: {direct_rate:,.0f} pings/s", flush=True)
    return result


def postgres_available(url: str) -> bool:
    base, _, _name = libpq_url(url).rpartition("/")
    try:
        with psycopg.connect(f"{base}/postgres", connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def main() -> int:
    only = os.environ.get("COOP_BENCH_ONLY")
    print(f"ingest bench: {ROUNDS} rounds of {BATCHES} batches x {BATCH_SIZE} pings, {MEMBERS} members, "
          "one server worker", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="coop-bench-ingest-") as tmp:
        if only in (None, "sqlite"):
            url = f"sqlite:///{tmp}/bench.db"
            results.append(bench_database("sqlite", url, Path(tmp) / "sqlite-data"))
        if only in (None, "postgresql"):
            if postgres_available(PG_URL):
                recreate_postgres_database(PG_URL)
                try:
                    results.append(bench_database("postgresql", PG_URL, Path(tmp) / "pg-data"))
                finally:
                    recreate_postgres_database(PG_URL, drop_only=True)
            else:
                print("  postgresql: server not reachable, skipped")
    print("ratio = API rate / direct rate of the same round; the median over rounds is the figure, "
          "the best and worst rounds are shown beside it")
    print(f"{'database':<12}{'clients':>8}{'api pings/s':>14}{'direct pings/s':>17}{'ratio':>8}{'(min..max)':>14}"
          "  target >= 0.5")
    for result in results:
        for clients in sorted(result.api_rates[0]):
            api = [rates[clients] for rates in result.api_rates]
            ratios = [a / d for a, d in zip(api, result.direct_rates, strict=True)]
            ratio = statistics.median(ratios)
            verdict = "met" if ratio >= 0.5 else "NOT met"
            print(f"{result.database:<12}{clients:>8}{statistics.median(api):>14,.0f}"
                  f"{statistics.median(result.direct_rates):>17,.0f}{ratio:>8.2f}"
                  f"{f'({min(ratios):.2f}..{max(ratios):.2f})':>14}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
