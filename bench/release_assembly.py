"""Release assembly from sealed tables: the real builder over four sealed weeks vs. Polars over the same
rows held in memory.

For each database (SQLite and/or PostgreSQL) it creates a fresh database and fills a daily, resolution-9
presence family with synthetic sealed rows as a region-wide population leaves them (``--cells`` res-9
cells around the Liverpool City Region towns per day, with generalised res-8 and res-7 rows), one input
record per member and day, a paid licence on the family and a queued release of ``--days`` days, then:

1. builds the release with the real builder (``build_release``: read the sealed rows and the input units,
   write the five files, store the units and sign the manifest), in a child process, timing it and its
   phases, with its peak RSS;
2. times the builder's reads alone (``read_rows`` and ``member_units``) in the same child;
3. the baseline, in this process: the same rows held in a Polars frame, filtered (period, ``k``), sorted
   and written as CSV to memory; and prints the ratios.

Usage: ``python bench/release_assembly.py [--days 28] [--cells 6000] [--members 20000]
[--database sqlite|postgresql|both]``. Prints figures; asserts nothing about time (design.md: a release
assembled from sealed tables in under a second).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import numpy as np
import polars as pl
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coop.kit.db import engine_for, is_sqlite
from coop.kit.migrate import upgrade_to_head

START = date(2026, 11, 2)  # a Monday
K, TAU = 10, 14
PURPOSE = "transport-planning"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "coop_bench_release_assembly"
TOWNS = [(53.4084, -2.9916, 30), (53.3934, -3.0148, 8), (53.4539, -2.7375, 8), (53.6475, -3.0053, 7),
         (53.4467, -2.9920, 5), (53.4232, -3.0658, 5), (53.3617, -2.7337, 5), (53.3417, -2.7297, 4)]


def region_cells(count: int) -> list[int]:
    """``count`` distinct res-9 cells, grown ring by ring around the towns (bigger towns wider)."""
    found: dict[int, None] = {}
    radius = 1
    while len(found) < count:
        for lat, lng, weight in TOWNS:
            centre = h3.latlng_to_cell(lat, lng, 9)
            for cell in h3.grid_disk(centre, radius * weight // 8 + radius):
                found.setdefault(h3.str_to_int(cell), None)
        radius += 1
    return list(found)[:count]


def sealed_rows(days: int, n_cells: int, seed: int = 7) -> pl.DataFrame:
    """bucket_start (UTC), cell, resolution, members: what sealing leaves for ``days`` daily buckets."""
    rng = np.random.default_rng(seed)
    fine = region_cells(n_cells)
    parents8 = sorted({h3.str_to_int(h3.cell_to_parent(h3.int_to_str(c), 8)) for c in fine})
    parents7 = sorted({h3.str_to_int(h3.cell_to_parent(h3.int_to_str(c), 7)) for c in fine})
    frames = []
    for day in range(days):
        start = datetime.combine(START + timedelta(days=day), datetime.min.time(), tzinfo=UTC)
        for cells, share, scale in ((fine, 0.8, 40.0), (parents8, 0.3, 60.0), (parents7, 0.2, 90.0)):
            kept = np.array(cells)[rng.random(len(cells)) < share]
            members = TAU + rng.exponential(scale, len(kept)).astype(np.int64)
            frames.append(pl.DataFrame({"bucket_start": [start] * len(kept), "cell": kept,
                                        "resolution": h3.get_resolution(h3.int_to_str(int(cells[0]))),
                                        "members": members}))
    return pl.concat(frames).with_columns(pl.col("resolution").cast(pl.Int64))


def store(url: str, rows: pl.DataFrame, *, days: int, n_members: int) -> str:
    """Members, a family with its sealed rows and inputs, a paid licence and a queued release; its id."""
    engine = engine_for(url)
    now = datetime.now(UTC)
    table = sa.MetaData()
    table.reflect(engine)
    t = table.tables
    members = [str(uuid.UUID(int=n)) for n in range(1, n_members + 1)]
    family_id, modeller = str(uuid.uuid4()), str(uuid.uuid4())
    request_id, licence_id, release_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    end = START + timedelta(days=days)
    dataset = {"kind": "presence", "resolution": 9, "time_bucket": "day", "start": START.isoformat(),
               "end": end.isoformat(), "region": None, "k": K}
    rng = np.random.default_rng(11)
    with engine.begin() as connection:
        connection.execute(t["account"].insert(), [
            {"id": m, "display_name": None, "organisation": None, "roles": ["member"], "created_at": now,
             "terms_version": "2026-11", "collection_paused": False, "erased_at": None} for m in members]
            + [{"id": modeller, "display_name": "Bench", "organisation": "Bench", "roles": ["modeller"],
                "created_at": now, "terms_version": None, "collection_paused": False, "erased_at": None}])
        connection.execute(t["member_key"].insert(), [
            {"no": n, "account_id": m, "wrapped_key": os.urandom(60), "created_at": now, "shredded_at": None}
            for n, m in enumerate(members, start=1)])
        connection.execute(t["table_family"].insert(), [{
            "id": family_id, "kind": "presence", "purpose_code": PURPOSE, "time_bucket": "day", "resolution": 9,
            "epsilon_per_day": 0.5, "delta": 1e-7, "k_floor": K, "tau": TAU, "sigma": 6.0,
            "contribution_bound": 3, "coarsest_resolution": 7, "mechanism": "bench", "opened_at": now,
            "opened_by_licence_id": None, "seal_from": START}])
        buckets = [{"family_id": family_id, "bucket_start": datetime.combine(START + timedelta(days=d),
                                                                             datetime.min.time(), tzinfo=UTC),
                    "bucket_end": datetime.combine(START + timedelta(days=d + 1), datetime.min.time(), tzinfo=UTC),
                    "sealed_at": now} for d in range(days)]
        connection.execute(t["sealed_bucket"].insert(), buckets)
        for chunk in rows.iter_slices(50_000):
            connection.execute(t["sealed_cell"].insert(), [
                {"family_id": family_id, "bucket_start": b, "cell": c, "resolution": r, "members": m}
                for b, c, r, m in chunk.iter_rows()])
        inputs = [{"family_id": family_id, "member_id": m, "day": START + timedelta(days=d), "buckets": 1}
                  for d in range(days) for m in members if rng.random() < 0.8]
        for first in range(0, len(inputs), 50_000):
            connection.execute(t["sealed_contribution"].insert(), inputs[first:first + 50_000])
        connection.execute(t["licence_request"].insert(), [{
            "id": request_id, "requester_id": modeller, "title": "Bench", "purpose_code": PURPOSE,
            "organisation": "Bench", "public_benefit": "-", "description": "-", "dataset": dataset,
            "duration_days": 365, "fee_pence": 0, "status": "approved", "created_at": now, "decided_at": now}])
        connection.execute(t["licence"].insert(), [{
            "id": licence_id, "request_id": request_id, "licensee_id": modeller, "organisation": "Bench",
            "purpose_code": PURPOSE, "dataset": dataset, "k": K, "fee_pence": 0, "paid_pence": 0,
            "revoked_at": None, "revoke_reason": None, "valid_from": now - timedelta(days=1),
            "valid_until": now + timedelta(days=365), "terms_version": "2026-11", "document": {},
            "jws": "bench", "created_at": now, "family_id": family_id}])
        connection.execute(t["release"].insert(), [{
            "id": release_id, "licence_id": licence_id, "requested_by": modeller, "start": START, "end": end,
            "status": "queued", "progress": 0.0, "created_at": now, "built_at": None, "stats": None,
            "files": None, "jws": None, "error": None}])
        if not is_sqlite(url):
            connection.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('member_key', 'no'), {n_members})"))
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "ANALYZE" if is_sqlite(url) else "VACUUM ANALYZE")
    return release_id


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def build_only(release_id: str) -> None:
    """In the child: time the builder's reads, then the whole build; print one JSON line."""
    from sqlmodel import Session

    from coop.kit.crypto import load_keyring
    from coop.kit.db import get_engine
    from coop.kit.settings import get_settings
    from coop.releases.builder import BuildContext, _plan, build_release, read_rows
    from coop.releases.sealed import member_units

    settings = get_settings()
    context = BuildContext(engine=get_engine(), settings=settings, keyring=load_keyring(settings))
    with Session(context.engine) as session:
        plan = _plan(session, release_id)
        started, cpu = time.perf_counter(), time.process_time()
        rows = read_rows(session, plan)
        read_s, read_cpu = time.perf_counter() - started, time.process_time() - cpu
        started = time.perf_counter()
        units = member_units(session, family_id=plan.family.family_id, period=plan.period)
        units_s = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    build_release(context, release_id)
    build_s, build_cpu = time.perf_counter() - started, time.process_time() - cpu
    with context.engine.connect() as connection:
        status, error = connection.execute(sa.text("SELECT status, error FROM release WHERE id = :id"),
                                           {"id": release_id}).one()
    print(json.dumps({"read_s": read_s, "read_cpu": read_cpu, "units_s": units_s, "build_s": build_s,
                      "build_cpu": build_cpu, "rows": rows.height, "files_mib": _files_mib(context, release_id),
                      "members": len(units), "status": status, "error": error,
                      "peak_rss_mib": peak_rss_mib()}), flush=True)


def _files_mib(context: Any, release_id: str) -> float:
    from coop.releases.builder import release_dir

    return sum(path.stat().st_size for path in release_dir(context.settings, release_id).iterdir()) / 2**20


def baseline(rows: pl.DataFrame, *, days: int) -> tuple[float, float, int]:
    """The least any assembly does, over rows already in memory: filter, sort, write CSV to memory."""
    started, cpu = time.perf_counter(), time.process_time()
    end = datetime.combine(START + timedelta(days=days), datetime.min.time(), tzinfo=UTC)
    selected = (rows.filter(pl.col("bucket_start") < end, pl.col("members") >= K)
                .sort(["bucket_start", "resolution", "cell"], descending=[False, True, False]))
    buffer = io.BytesIO()
    distinct = selected.get_column("cell").unique()
    hexes = pl.Series([format(cell, "x") for cell in distinct.to_list()], dtype=pl.String)
    selected.with_columns(pl.col("cell").replace_strict(distinct, hexes, return_dtype=pl.String)).write_csv(buffer)
    return time.perf_counter() - started, time.process_time() - cpu, selected.height


def fresh_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{PG_BENCH_DB}"')
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_BENCH_DB


def drop_database(kind: str) -> None:
    if kind == "postgresql":
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        admin.dispose()


def run(kind: str, rows: pl.DataFrame, *, days: int, n_members: int) -> None:
    with tempfile.TemporaryDirectory(prefix="coop-bench-assembly-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(kind, workdir)
        try:
            upgrade_to_head(url)
            release_id = store(url, rows, days=days, n_members=n_members)
            env = {**os.environ, "COOP_DATABASE_URL": url, "COOP_DATA_DIR": str(workdir / "data"),
                   "COOP_K_FLOOR": str(K)}
            output = subprocess.run([sys.executable, __file__, "--build-only", release_id], env=env, check=True,
                                    stdout=subprocess.PIPE, text=True).stdout
            child = json.loads(output.strip().splitlines()[-1])
            if child["status"] != "ready":
                raise SystemExit(f"[{kind}] the build failed: {child}")
            base_s, base_cpu, base_rows = baseline(rows, days=days)
            print(f"[{kind}] {days} days, {child['rows']:,} rows (baseline {base_rows:,}), "
                  f"{child['members']:,} members with input units, files {child['files_mib']:.0f} MiB")
            print(f"[{kind}] assembly (builder's read of the sealed rows): {child['read_s']:.3f} s wall, "
                  f"{child['read_cpu']:.3f} s CPU; input units: {child['units_s']:.3f} s")
            print(f"[{kind}] whole build (reads, 5 files, units, signed manifest): {child['build_s']:.3f} s wall, "
                  f"{child['build_cpu']:.3f} s CPU, peak RSS {child['peak_rss_mib']:.0f} MiB")
            print(f"[{kind}] Polars baseline (filter, sort, CSV in memory): {base_s:.3f} s wall, {base_cpu:.3f} s "
                  f"CPU -> assembly ratio {child['read_s'] / base_s:.1f}x wall, whole-build ratio "
                  f"{child['build_s'] / base_s:.1f}x wall")
        finally:
            drop_database(kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--cells", type=int, default=6000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--build-only", metavar="RELEASE_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        build_only(args.build_only)
        return
    rows = sealed_rows(args.days, args.cells)
    print(f"synthesised {rows.height:,} sealed rows over {args.days} days", flush=True)
    for kind in (["sqlite", "postgresql"] if args.database == "both" else [args.database]):
        run(kind, rows, days=args.days, n_members=args.members)


if __name__ == "__main__":
    main()
