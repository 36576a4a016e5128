"""Sealing benchmark: a week of N stored pings sealed (presence, resolution 9, daily) against a plain
Polars group-by of the same pings held in memory, and a four-week release assembled from sealed rows.

For each database (SQLite and/or PostgreSQL) it creates a fresh database, stores the population of
``bench/release.py`` (members, consent, N pings in one week around Liverpool City Region towns) and
opens one table family (presence, transport-planning, day, resolution 9, the default epsilon 0.5 and
delta 1e-7, k floor 10), then:

1. seals the week's 7 buckets with the real sealer (``coop.tables.sealing.seal_due``) in a child
   process, timing it and reading its peak RSS and, on PostgreSQL, the peak RSS of its backends;
2. times ``group_by(member, day, cell at res 9).len()`` over the same pings in memory (the floor any
   sealer has to pay: the database must at least do this grouping), and prints the ratio (goal <= 2x);
3. copies the sealed week three times (weeks 2-4, shifted) and times assembling a four-week release's
   rows from the sealed tables (``sealed_cells``, goal < 1 s), with and without a bounding box.

Usage: ``python bench/seal.py [--pings 1000000,10000000] [--members 20000] [--database both]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from release import (  # bench/release.py: the population, its loaders and the memory probe
    PG_ADMIN_URL,
    WEEK_START,
    Population,
    generate,
    parent,
    peak_rss_mib,
    store_pings,
    store_population,
    timed,
)

from coop.kit.db import engine_for, is_sqlite
from coop.kit.migrate import upgrade_to_head

DAY_MS = 86_400_000
K_FLOOR = 10
WEEK = datetime(WEEK_START.year, WEEK_START.month, WEEK_START.day, tzinfo=UTC)
SEAL_AT = WEEK + timedelta(days=9)  # the week's last day ended 48 h ago: exactly its 7 buckets are due
BOX = (-3.1, 53.35, -2.85, 53.5)  # central Liverpool and the Wirral shore
PG_BENCH_DB = "coop_bench_seal"


def fresh_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}"
    drop_database(kind)
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{PG_BENCH_DB}"')
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_BENCH_DB


def drop_database(kind: str) -> None:
    if kind == "postgresql":
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        admin.dispose()


def open_family(url: str) -> str:
    from coop.kit.settings import Settings
    from coop.tables.families import FamilyKey, new_family

    family = new_family(key=FamilyKey(kind="presence", purpose_code="transport-planning", time_bucket="day",
                                      resolution=9),
                        epsilon_per_day=0.5, settings=Settings(k_floor=K_FLOOR), at=datetime.now(UTC),
                        seal_from=WEEK_START, licence_id=None)
    with engine_for(url).begin() as connection:
        table = sa.Table("table_family", sa.MetaData(), autoload_with=connection)
        connection.execute(table.insert(), [family.model_dump()])
    return family.id


def _backend_peak_mib(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def seal_only(family_id: str) -> None:
    """The child: seal what is due at SEAL_AT, report time and memory as one JSON line."""
    from coop.kit.db import get_engine
    from coop.kit.settings import get_settings
    from coop.tables.sealing import seal_due

    engine = get_engine()
    pids: set[int] = set()
    if not is_sqlite(str(engine.url)):
        @sa.event.listens_for(engine, "connect")
        def _record_backend(dbapi_connection: Any, _record: Any) -> None:
            pids.add(int(dbapi_connection.info.backend_pid))  # psycopg 3: no query, no transaction

    started = time.perf_counter()
    [report] = seal_due(engine, get_settings(), now=SEAL_AT, family_ids=[family_id])
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "buckets": report.buckets_sealed, "peak_rss_mib": peak_rss_mib(),
                      "backend_peak_mib": _backend_peak_mib(pids), "backends": len(pids)}), flush=True)


def seal_in_child(url: str, family_id: str, data_dir: Path) -> dict[str, float]:
    env = {**os.environ, "COOP_DATABASE_URL": url, "COOP_DATA_DIR": str(data_dir), "COOP_K_FLOOR": str(K_FLOOR)}
    output = subprocess.run([sys.executable, __file__, "--seal-only", family_id], env=env, check=True,
                            stdout=subprocess.PIPE, text=True).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def plain_group_by(pings: pl.DataFrame) -> pl.DataFrame:
    """What sealing must at least compute: pings per (member, day, cell at resolution 9)."""
    return pings.group_by("member_no", (pl.col("ts_ms") // DAY_MS).alias("day"),
                          parent(pl.col("cell"), 9).alias("cell")).agg(pl.len())


def copy_week_forward(url: str, family_id: str) -> int:
    """Weeks 2-4 as copies of the sealed week (same rows, shifted), so a four-week release has rows."""
    engine = engine_for(url)
    with engine.begin() as connection:
        rows = connection.execute(sa.text("SELECT bucket_start, resolution, cell, members FROM sealed_cell "
                                          "WHERE family_id = :f"), {"f": family_id}).all()
        buckets = connection.execute(sa.text("SELECT bucket_start, bucket_end, sealed_at FROM sealed_bucket "
                                             "WHERE family_id = :f"), {"f": family_id}).all()
        cell = sa.Table("sealed_cell", sa.MetaData(), autoload_with=connection)
        bucket = sa.Table("sealed_bucket", sa.MetaData(), autoload_with=connection)
        for week in (1, 2, 3):
            shift = timedelta(days=7 * week)

            def moved(value: Any, by: timedelta = shift) -> datetime:
                moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
                return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) + by

            connection.execute(bucket.insert(), [{"family_id": family_id, "bucket_start": moved(s),
                                                  "bucket_end": moved(e), "sealed_at": moved(a, timedelta(0))}
                                                 for s, e, a in buckets])
            if rows:
                connection.execute(cell.insert(), [{"family_id": family_id, "bucket_start": moved(s), "resolution": r,
                                                    "cell": c, "members": m} for s, r, c, m in rows])
    return len(rows) * 4


def assemble(url: str, family_id: str, *, bbox: tuple[float, float, float, float] | None) -> tuple[int, float]:
    from sqlmodel import Session

    from coop.tables.service import sealed_cells

    engine = engine_for(url)
    best = float("inf")
    height = 0
    for _ in range(3):
        started = time.perf_counter()
        with Session(engine) as session:
            frame = sealed_cells(session, family_id, start=WEEK, end=WEEK + timedelta(days=28), bbox=bbox,
                                 min_members=K_FLOOR)
        best = min(best, time.perf_counter() - started)
        height = frame.height
    return height, best


def run(kind: str, population: Population, n_members: int, *, keep: bool) -> None:
    n = population.pings.height
    with tempfile.TemporaryDirectory(prefix="coop-bench-seal-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(kind, workdir)
        try:
            upgrade_to_head(url)
            store_population(url, population, n_members)
            family_id = open_family(url)
            load_s = store_pings(url, population.pings)
            print(f"[{kind}] {n:,} pings stored in {load_s:.1f} s", flush=True)
            sealed = seal_in_child(url, family_id, workdir / "data")
            _, polars_s = timed(plain_group_by, population.pings)
            seal_s = sealed["seconds"]
            backends = (f", PostgreSQL backends {sealed['backend_peak_mib']:.0f} MiB ({int(sealed['backends'])})"
                        if kind == "postgresql" else "")
            print(f"[{kind}] seal a week ({int(sealed['buckets'])} daily buckets, res 9): {seal_s:.2f} s, "
                  f"{seal_s / (n / 1e6):.2f} s per million pings; peak RSS sealer {sealed['peak_rss_mib']:.0f} MiB"
                  f"{backends}")
            print(f"[{kind}] Polars group_by(member, day, cell) in memory: {polars_s:.2f} s -> ratio "
                  f"{seal_s / polars_s:.2f}x (goal <= 2x)")
            rows = copy_week_forward(url, family_id)
            height, assemble_s = assemble(url, family_id, bbox=None)
            boxed, boxed_s = assemble(url, family_id, bbox=BOX)
            print(f"[{kind}] four-week release from sealed tables: {height:,} rows in {assemble_s * 1000:.0f} ms; "
                  f"with a bbox {boxed:,} rows in {boxed_s * 1000:.0f} ms (goal < 1 s; {rows:,} sealed rows)",
                  flush=True)
        finally:
            if not keep:
                drop_database(kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", default="1000000,10000000", help="comma-separated sizes (default 1M,10M)")
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL bench database")
    parser.add_argument("--seal-only", metavar="FAMILY_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seal_only:
        seal_only(args.seal_only)
        return
    for size in (int(value) for value in args.pings.split(",")):
        population, generate_s = timed(generate, size, args.members)
        print(f"generated {population.pings.height:,} pings for {args.members:,} members in {generate_s:.1f} s",
              flush=True)
        for kind in (["sqlite", "postgresql"] if args.database == "both" else [args.database]):
            run(kind, population, args.members, keep=args.keep)


if __name__ == "__main__":
    main()
