"""Memory of the member's data downloads: 1,000,000 pings streamed by a real ``coop serve`` process.

    .venv/bin/python bench/export_memory.py                         # SQLite, then PostgreSQL
    .venv/bin/python bench/export_memory.py --pings 200000 --backend sqlite
    .venv/bin/python bench/export_memory.py --pg-admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        --pg-database coop_bench_rights                            # the PostgreSQL database is created and dropped

For each backend: a fresh database (a temporary SQLite file; a PostgreSQL database created here and
dropped at the end), one member, N pings sealed with the ingest codec and bulk-inserted, then
``coop serve`` in a subprocess; the client downloads ``GET /v1/me/pings?format=csv``, ``?format=geojson``
and ``GET /v1/me/export`` while a thread samples the server's RSS (psutil, every 10 ms), walks 100 JSON
pages of 1000, and finally erases the member (``DELETE /v1/me``). Prints figures;
asserts only that every ping arrived (design.md: the export of 1M pings streams in constant memory;
target: server peak RSS well under 200 MiB).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa

from coop.accounts.roles import Role
from coop.accounts.service import create_account, data_key_for, member_key_for
from coop.ingest.cells import cell_of
from coop.ingest.codec import seal_ping
from coop.ingest.repository import PingRow, insert_pings
from coop.ingest.validation import CleanPing
from coop.kit.crypto import DataKey, load_keyring
from coop.kit.db import make_engine, session_scope
from coop.kit.migrate import upgrade_to_head
from coop.kit.settings import Settings

MIB = 1024 * 1024
INSERT_BATCH = 20_000
SAMPLE_EVERY_S = 0.01
JSON_PAGES = 100
COOP = Path(sys.executable).with_name("coop")


@dataclass
class Download:
    name: str
    rows: int
    size: int
    seconds: float
    baseline_rss: int
    peak_rss: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss(process: psutil.Process) -> int:
    """Resident memory of the server and any children it started."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return int(total)


def _synthetic_pings(count: int, *, member_no: int, data_key: DataKey, seed: int = 7) -> Iterator[list[PingRow]]:
    """Sealed rows over the last 29 days around Liverpool, every fifth with all optional fields."""
    rng = random.Random(seed)
    start_ms = int((datetime.now(UTC) - timedelta(days=29)).timestamp() * 1000)
    step_ms = max(1, (28 * 86_400_000) // max(count, 1))
    batch: list[PingRow] = []
    for n in range(count):
        lat, lng = 53.40838 + rng.uniform(-0.15, 0.15), -2.99164 + rng.uniform(-0.2, 0.2)
        if n % 5 == 0:
            ping = CleanPing(n, f"bench-{n:07d}", start_ms + n * step_ms, lat, lng, 8.0, 1.4, 20.0, 180.0, 0.5,
                             "walking")
        else:
            ping = CleanPing(n, f"bench-{n:07d}", start_ms + n * step_ms, lat, lng)
        batch.append((member_no, ping.client_id, ping.ts_ms, cell_of(lat, lng),
                      seal_ping(data_key, ping, member_no=member_no)))
        if len(batch) == INSERT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def prepare(settings: Settings, *, pings: int) -> str:
    """Migrate, create one member, insert ``pings`` sealed pings; the member's token."""
    url = settings.resolved_database_url
    upgrade_to_head(url)
    keyring = load_keyring(settings)
    engine = make_engine(url)
    with session_scope(engine) as session:
        account, issued = create_account(session, roles=[Role.MEMBER], display_name="Bench member",
                                         organisation=None, keyring=keyring)
        member_key = member_key_for(session, account.id)
        member_no, data_key = member_key.no, data_key_for(member_key, keyring)
    assert member_no is not None and data_key is not None
    started = time.perf_counter()
    inserted = 0
    for batch in _synthetic_pings(pings, member_no=member_no, data_key=data_key):
        with session_scope(engine) as session:
            inserted += insert_pings(session, batch)
    elapsed = time.perf_counter() - started
    engine.dispose()
    print(f"  sealed and inserted {inserted:,} pings in {elapsed:.1f} s ({inserted / elapsed:,.0f} pings/s)")
    return issued.token


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, psutil.Process]]:
    """``coop serve`` in a subprocess on a free port, stopped (by its pid) on exit."""
    port = _free_port()
    env = {**os.environ, "COOP_DATABASE_URL": settings.resolved_database_url,
           "COOP_DATA_DIR": str(settings.data_dir)}
    server = subprocess.Popen([str(COOP), "serve", "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("coop serve did not become ready")
            time.sleep(0.2)
        yield base, psutil.Process(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def download(base: str, process: psutil.Process, *, token: str, name: str, path: str, marker: bytes) -> Download:
    """Stream ``path``, counting ``marker`` occurrences (one per ping) while sampling the server's RSS."""
    headers = {"Authorization": f"Bearer {token}"}
    baseline = _rss(process)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss(process))
            time.sleep(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rows = size = 0
    tail = b""
    started = time.perf_counter()
    try:
        with httpx.stream("GET", f"{base}{path}", headers=headers, timeout=600) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                size += len(chunk)
                window = tail + chunk
                rows += window.count(marker) - tail.count(marker)
                tail = window[-(len(marker) - 1):] if len(marker) > 1 else b""
    finally:
        done.set()
        sampler.join()
    return Download(name=name, rows=rows, size=size, seconds=time.perf_counter() - started, baseline_rss=baseline,
                    peak_rss=max(peak, _rss(process)))


def run_backend(settings: Settings, *, pings: int) -> list[Download]:
    token = prepare(settings, pings=pings)
    results = []
    with serving(settings) as (base, process):
        httpx.get(f"{base}/v1/me/pings?limit=10", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        for name, path, marker in (("csv", "/v1/me/pings?format=csv", b"\n"),
                                   ("geojson", "/v1/me/pings?format=geojson", b'"Point"'),
                                   ("export", "/v1/me/export", b'"ts":"')):
            result = download(base, process, token=token, name=name, path=path, marker=marker)
            if name == "csv":
                result.rows -= 1  # the header row
            results.append(result)
            print(f"  {name:8} {result.rows:>9,} pings  {result.size / MIB:7.1f} MiB  {result.seconds:6.1f} s "
                  f"({result.rows / result.seconds:,.0f} pings/s)  server RSS: before {result.baseline_rss / MIB:.0f} MiB, "
                  f"peak {result.peak_rss / MIB:.0f} MiB (+{(result.peak_rss - result.baseline_rss) / MIB:.0f} MiB)")
            if result.rows != pings:
                raise SystemExit(f"{name}: expected {pings} pings, got {result.rows}")
        walk_pages(base, process, token=token, pages=JSON_PAGES)
        erase(base, process, token=token, pings=pings)
    return results


def walk_pages(base: str, process: psutil.Process, *, token: str, pages: int) -> None:
    """Follow ``next_cursor`` through ``pages`` JSON pages of 1000 pings."""
    headers = {"Authorization": f"Bearer {token}"}
    baseline = peak = _rss(process)
    cursor: str | None = None
    started = time.perf_counter()
    rows = 0
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for _ in range(pages):
            params: dict[str, str | int] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            body = client.get("/v1/me/pings", params=params).raise_for_status().json()
            rows += len(body["items"])
            peak = max(peak, _rss(process))
            cursor = body["next_cursor"]
            if cursor is None:
                break
    elapsed = time.perf_counter() - started
    print(f"  json     {rows:>9,} pings in pages of 1000: {1000 * elapsed / max(1, rows // 1000):.0f} ms per page; "
          f"server RSS: before {baseline / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB")


def erase(base: str, process: psutil.Process, *, token: str, pings: int) -> None:
    """``DELETE /v1/me`` on the member with all those pings."""
    baseline = _rss(process)
    started = time.perf_counter()
    response = httpx.delete(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=600)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    deleted = response.json()["pings_deleted"]
    print(f"  erasure  {deleted:>9,} pings deleted, key shredded in {elapsed:.1f} s; server RSS: before "
          f"{baseline / MIB:.0f} MiB, after {_rss(process) / MIB:.0f} MiB")
    if deleted != pings:
        raise SystemExit(f"erasure: expected {pings} pings deleted, got {deleted}")


@contextmanager
def postgres_database(admin_url: str, name: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database ``name`` (dropped afterwards); None when the server does not answer."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        print(f"  PostgreSQL not reachable ({type(exc).__name__}); skipped")
        admin.dispose()
        yield None
        return
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pings", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "COOP_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--pg-database", default="coop_bench_rights")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="coop-bench-rights-") as tmp:
        if args.backend in ("sqlite", "both"):
            print(f"SQLite, {args.pings:,} pings")
            data_dir = Path(tmp) / "sqlite"
            run_backend(Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'coop.kit.db'}"),
                        pings=args.pings)
        if args.backend in ("postgresql", "both"):
            print(f"PostgreSQL, {args.pings:,} pings")
            with postgres_database(args.pg_admin_url, args.pg_database) as url:
                if url is not None:
                    run_backend(Settings(data_dir=Path(tmp) / "postgresql", database_url=url), pings=args.pings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
