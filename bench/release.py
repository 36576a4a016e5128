"""Release-build benchmark: the builder over N stored pings vs. Polars over the same pings in memory.

For each database (SQLite and/or PostgreSQL) it creates a fresh database, stores a synthetic population
(members, consent, a licence) and N pings in one week, clustered around Liverpool City Region towns so
that cells are shared, then:

1. builds a release (resolution 9, hourly buckets, k = 10) with the real builder, in a child process,
   timing it and reading its peak RSS;
2. computes the same table with plain Polars group-bys over the same pings held in memory (consent
   windows, bounding, generalisation), checks that it equals the release's ``cells.csv`` row for row,
   and times it; for reference it also times the bare ``group_by([hour, cell]).n_unique(member)``.

Usage: ``python bench/release.py [--pings 10000000] [--members 20000] [--database sqlite|postgresql|both]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import h3
import numpy as np
import polars as pl
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coop.kit.db import engine_for, is_sqlite
from coop.kit.migrate import upgrade_to_head

WEEK_START = date(2026, 11, 2)  # a Monday
PERIOD_START_MS = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1000)
HOUR_MS = 3_600_000
K = 10
T = TypeVar("T")
PURPOSE = "transport-planning"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "coop_bench_releases"

# (name, lat, lng, weight, spread in km): where members live and work.
TOWNS = [
    ("Liverpool", 53.4084, -2.9916, 30, 3.0), ("Birkenhead", 53.3934, -3.0148, 8, 1.8),
    ("St Helens", 53.4539, -2.7375, 8, 1.8), ("Southport", 53.6475, -3.0053, 7, 1.8),
    ("Bootle", 53.4467, -2.9920, 5, 1.2), ("Wallasey", 53.4232, -3.0658, 5, 1.4),
    ("Widnes", 53.3617, -2.7337, 5, 1.4), ("Runcorn", 53.3417, -2.7297, 4, 1.4),
    ("Kirkby", 53.4826, -2.8921, 3, 1.0), ("Huyton", 53.4096, -2.8392, 3, 1.0),
    ("Crosby", 53.4872, -3.0186, 3, 1.0), ("Formby", 53.5586, -3.0678, 2, 1.0),
    ("Maghull", 53.5160, -2.9420, 2, 1.0), ("Prescot", 53.4292, -2.8006, 2, 0.8),
    ("Heswall", 53.3280, -3.0980, 2, 1.0), ("Halewood", 53.3599, -2.8306, 2, 0.8),
]


@dataclass
class Population:
    pings: pl.DataFrame  # member_no, ts_ms, cell (res 10) in time order
    consent_from_ms: dict[int, int]  # members whose pings count from this time on (latest event given)
    withdrawn: list[int]  # members who gave consent and then withdrew
    no_consent: list[int]  # members with consent for another purpose only


def generate(n_pings: int, n_members: int, seed: int = 7) -> Population:
    """Pings in one week: each member has a home, a work place and two other haunts near towns; each
    hour a member is at one place (work on weekday office hours, mostly home at night) and each ping
    falls in that place's resolution-10 cell or, with GPS jitter, a neighbour."""
    rng = np.random.default_rng(seed)
    weights = np.array([t[3] for t in TOWNS], float)
    weights /= weights.sum()
    lat0, lng0, spread = (np.array([t[i] for t in TOWNS]) for i in (1, 2, 4))
    km_lng = 111.32 * math.cos(math.radians(53.45))

    def places(towns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offset = rng.normal(0, 1, size=(len(towns), 2)) * spread[towns, None]
        return lat0[towns] + offset[:, 0] / 111.32, lng0[towns] + offset[:, 1] / km_lng

    home_town = rng.choice(len(TOWNS), n_members, p=weights)
    work_town = np.where(rng.random(n_members) < 0.5, 0, rng.choice(len(TOWNS), n_members, p=weights))
    haunts = [places(home_town), places(work_town), places(home_town),
              places(rng.choice(len(TOWNS), n_members, p=weights))]
    ring = 7
    cells = np.empty((n_members, len(haunts), ring), dtype=np.int64)
    for person in range(n_members):
        for index, (lats, lngs) in enumerate(haunts):
            centre = h3.latlng_to_cell(float(lats[person]), float(lngs[person]), 10)
            cells[person, index] = [h3.str_to_int(c) for c in [centre, *sorted(h3.grid_ring(centre, 1))]]

    hour_weights = np.array([0.25 if h % 24 < 6 else 1.0 if h % 24 < 22 else 0.5 for h in range(168)])
    hour: np.ndarray = rng.choice(168, n_pings, p=hour_weights / hour_weights.sum())
    member: np.ndarray = rng.integers(0, n_members, n_pings)
    ts = PERIOD_START_MS + hour.astype(np.int64) * HOUR_MS + rng.integers(0, HOUR_MS, n_pings)
    hour_of_day, weekday = hour % 24, hour // 24 < 5
    at_work = weekday & (hour_of_day >= 9) & (hour_of_day < 17)
    choice = rng.random(n_members * 168)[member.astype(np.int64) * 168 + hour]  # one place per member-hour
    haunt = np.where(at_work, np.where(choice < 0.85, 1, 3),
                     np.where(choice < 0.7, 0, np.where(choice < 0.85, 2, 3)))
    jitter = np.where(rng.random(n_pings) < 0.85, 0, rng.integers(1, ring, n_pings))
    frame = pl.DataFrame({"member_no": member + 1, "ts_ms": ts, "cell": cells[member, haunt, jitter]})
    frame = frame.sort("ts_ms")

    numbers = np.arange(1, n_members + 1)
    rng.shuffle(numbers)
    late, withdrawn, no_consent = numbers[:400], numbers[400:600], numbers[600:800]
    consent_from = {int(m): PERIOD_START_MS - 30 * 24 * HOUR_MS for m in numbers[800:]}
    consent_from.update({int(m): PERIOD_START_MS + int(rng.integers(0, 168)) * HOUR_MS + 1_234 for m in late})
    return Population(pings=frame, consent_from_ms=consent_from, withdrawn=[int(m) for m in withdrawn],
                      no_consent=[int(m) for m in no_consent])


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def store_population(url: str, population: Population, n_members: int) -> str:
    """Accounts, member keys, consent events, a modeller and a paid licence; returns a queued release id."""
    engine = engine_for(url)
    now = datetime.now(UTC)
    metadata = sa.MetaData()
    metadata.reflect(engine, only=["account", "member_key", "consent_event", "licence_request", "licence",
                                   "release"])
    table = metadata.tables
    accounts = [{"id": str(uuid.UUID(int=n)), "display_name": None, "organisation": None, "roles": ["member"],
                 "created_at": now, "terms_version": "2026-11", "collection_paused": False, "erased_at": None}
                for n in range(1, n_members + 1)]
    keys = [{"no": n, "account_id": str(uuid.UUID(int=n)), "wrapped_key": os.urandom(60), "created_at": now,
             "shredded_at": None} for n in range(1, n_members + 1)]
    events = []

    def event(member_no: int, *, state: str, at_ms: int, purpose: str = PURPOSE) -> None:
        events.append({"id": str(uuid.uuid4()), "member_id": str(uuid.UUID(int=member_no)), "purpose_code": purpose,
                       "state": state, "policy_version": "1", "at": _ms_to_dt(at_ms), "method": "api",
                       "receipt_id": str(uuid.uuid4()), "receipt": {}, "jws": "bench"})

    before = PERIOD_START_MS - 30 * 24 * HOUR_MS
    for member_no, from_ms in population.consent_from_ms.items():
        event(member_no, state="given", at_ms=from_ms)
    for member_no in population.withdrawn:
        event(member_no, state="given", at_ms=before)
        event(member_no, state="withdrawn", at_ms=PERIOD_START_MS + 3 * 24 * HOUR_MS)
    for member_no in population.no_consent:
        event(member_no, state="given", at_ms=before, purpose="public-health")
    modeller = str(uuid.uuid4())
    request_id, licence_id, release_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    dataset = {"resolution": 9, "time_bucket": "hour", "start": WEEK_START.isoformat(),
               "end": (WEEK_START + timedelta(days=7)).isoformat(), "region": None, "k": K}
    with engine.begin() as connection:
        connection.execute(table["account"].insert(), [*accounts, {
            "id": modeller, "display_name": "Bench modeller", "organisation": "Bench", "roles": ["modeller"],
            "created_at": now, "terms_version": None, "collection_paused": False, "erased_at": None}])
        connection.execute(table["member_key"].insert(), keys)
        connection.execute(table["consent_event"].insert(), events)
        connection.execute(table["licence_request"].insert(), [{
            "id": request_id, "requester_id": modeller, "title": "Bench", "purpose_code": PURPOSE,
            "organisation": "Bench", "public_benefit": "-", "description": "-", "dataset": dataset,
            "duration_days": 365, "fee_pence": 0, "status": "approved", "created_at": now, "decided_at": now}])
        connection.execute(table["licence"].insert(), [{
            "id": licence_id, "request_id": request_id, "licensee_id": modeller, "organisation": "Bench",
            "purpose_code": PURPOSE, "dataset": dataset, "k": K, "fee_pence": 0, "paid_pence": 0,
            "revoked_at": None, "revoke_reason": None, "valid_from": now - timedelta(days=1),
            "valid_until": now + timedelta(days=365), "terms_version": "2026-11", "document": {}, "jws": "bench",
            "created_at": now}])
        connection.execute(table["release"].insert(), [{
            "id": release_id, "licence_id": licence_id, "requested_by": modeller, "start": WEEK_START,
            "end": WEEK_START + timedelta(days=7), "status": "queued", "progress": 0.0, "created_at": now,
            "built_at": None, "stats": None, "files": None, "jws": None, "error": None}])
        if not is_sqlite(url):
            connection.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('member_key', 'no'), {n_members})"))
    return release_id


PING_INDEXES = {
    "ix_ping_member_ts": "CREATE INDEX ix_ping_member_ts ON ping (member_no, ts_ms)",
    "ix_ping_ts": "CREATE INDEX ix_ping_ts ON ping (ts_ms)",
}
BLOB = os.urandom(76)  # the size of a real encrypted ping (nonce, coordinates and fields, tag)


def store_pings(url: str, pings: pl.DataFrame) -> float:
    """Bulk-load the pings (indexes dropped during the load and rebuilt, as a restore would)."""
    engine = engine_for(url)
    started = time.perf_counter()
    with engine.begin() as connection:
        if not is_sqlite(url):  # on SQLite the unique constraint is part of the table
            connection.exec_driver_sql("ALTER TABLE ping DROP CONSTRAINT uq_ping_member_client")
        connection.exec_driver_sql("DROP INDEX ix_ping_member_ts")
        connection.exec_driver_sql("DROP INDEX ix_ping_ts")
    rows = pings.with_columns(pl.format("b{}", pl.int_range(pl.len())).alias("client_id"))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if is_sqlite(url):
            for pragma in ("cache_size=-1000000", "synchronous=OFF", "foreign_keys=OFF"):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.execute("BEGIN")
            for chunk in rows.iter_slices(500_000):
                cursor.executemany("INSERT INTO ping (member_no, client_id, ts_ms, cell, blob) VALUES (?, ?, ?, ?, ?)",
                                   [(m, c, t, cell, BLOB) for m, t, cell, c in chunk.iter_rows()])
        else:
            blob_hex = "\\x" + BLOB.hex()
            with cursor.copy("COPY ping (member_no, client_id, ts_ms, cell, blob) FROM STDIN") as copy:
                for chunk in rows.iter_slices(500_000):
                    text = chunk.select("member_no", "client_id", "ts_ms", "cell",
                                        pl.lit(blob_hex).alias("blob")).write_csv(
                        include_header=False, separator="\t", quote_style="never")
                    copy.write(text.replace("\\x", "\\\\x"))
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        if not is_sqlite(url):
            connection.exec_driver_sql("ALTER TABLE ping ADD CONSTRAINT uq_ping_member_client "
                                       "UNIQUE (member_no, client_id)")
        connection.exec_driver_sql(PING_INDEXES["ix_ping_member_ts"])
        connection.exec_driver_sql(PING_INDEXES["ix_ping_ts"])
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("ANALYZE" if is_sqlite(url) else "VACUUM ANALYZE")
    return time.perf_counter() - started


# The reference: the same table with plain Polars over the pings in memory ---------------------------

RESOLUTION_FIELD = 0xF << 52


def parent(cell: pl.Expr, resolution: int) -> pl.Expr:
    return ((cell | ((1 << (3 * (15 - resolution))) - 1)) & ~RESOLUTION_FIELD) | (resolution << 52)


def polars_table(pings: pl.DataFrame, consent_from_ms: dict[int, int]) -> pl.DataFrame:
    """Consent windows, hourly bounding (1 cell), k-anonymity with generalisation to resolution 7."""
    windows = pl.DataFrame({"member_no": list(consent_from_ms), "from_ms": list(consent_from_ms.values())},
                           schema={"member_no": pl.Int64, "from_ms": pl.Int64})
    end_ms = PERIOD_START_MS + 7 * 24 * HOUR_MS
    counted = (pings.lazy().join(windows.lazy(), on="member_no")
               .filter(pl.col("ts_ms") >= pl.col("from_ms"), pl.col("ts_ms") >= PERIOD_START_MS,
                       pl.col("ts_ms") < end_ms)
               .group_by("member_no", (pl.col("ts_ms") // HOUR_MS * HOUR_MS).alias("bucket"),
                         parent(pl.col("cell"), 9).alias("cell"))
               .agg(pl.len().alias("pings"))
               .sort(["pings", "cell"], descending=[True, False])
               .unique(["member_no", "bucket"], keep="first")
               .select("member_no", "bucket", "cell")
               .collect())
    tables = []
    for level in (9, 8, 7):
        if level < 9:
            counted = counted.with_columns(parent(pl.col("cell"), level).alias("cell"))
        counts = counted.group_by("bucket", "cell").agg(pl.len().alias("members")).filter(pl.col("members") >= K)
        tables.append(counts.with_columns(pl.lit(level).alias("resolution")))
        counted = counted.join(counts, on=["bucket", "cell"], how="anti")
    return (pl.concat([t.select("bucket", "cell", pl.col("resolution").cast(pl.Int64),
                                pl.col("members").cast(pl.Int64)) for t in tables])
            .sort(["bucket", "resolution", "cell"], descending=[False, True, False]))


def plain_group_by(pings: pl.DataFrame) -> pl.DataFrame:
    """The bare query an analyst would write first: distinct members per (hour, cell)."""
    return (pings.group_by((pl.col("ts_ms") // HOUR_MS).alias("hour"), parent(pl.col("cell"), 9).alias("cell"))
            .agg(pl.col("member_no").n_unique()))


def released_table(data_dir: Path, release_id: str) -> pl.DataFrame:
    table = pl.read_csv(data_dir / "releases" / release_id / "cells.csv", schema_overrides={"cell": pl.String})
    return table.select(
        (pl.col("bucket_start").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").dt.epoch("ms"))
        .alias("bucket"),
        pl.col("cell").str.to_integer(base=16).cast(pl.Int64), pl.col("resolution").cast(pl.Int64),
        pl.col("members").cast(pl.Int64))


# The build, in a child process so that its peak RSS is its own ---------------------------------------

def build_in_child(url: str, release_id: str, data_dir: Path) -> dict[str, float | str]:
    env = {**os.environ, "COOP_DATABASE_URL": url, "COOP_DATA_DIR": str(data_dir), "COOP_K_FLOOR": str(K)}
    output = subprocess.run([sys.executable, __file__, "--build-only", release_id], env=env, check=True,
                            stdout=subprocess.PIPE, text=True).stdout
    result: dict[str, float | str] = json.loads(output.strip().splitlines()[-1])
    return result


def peak_rss_mib() -> float:
    """This process's own peak RSS. ``VmHWM`` belongs to the memory map made at exec, whereas
    ``ru_maxrss`` of a forked child starts from its parent's RSS (here: the 10M pings held in memory)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_only(release_id: str) -> None:
    import logging

    from coop.kit.crypto import load_keyring
    from coop.kit.db import get_engine
    from coop.kit.settings import get_settings
    from coop.releases.builder import BuildContext, build_release

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="    %(message)s")
    settings = get_settings()
    context = BuildContext(engine=get_engine(), settings=settings, keyring=load_keyring(settings))
    started = time.perf_counter()
    build_release(context, release_id)
    seconds = time.perf_counter() - started
    with context.engine.connect() as connection:
        status, error = connection.execute(sa.text("SELECT status, error FROM release WHERE id = :id"),
                                           {"id": release_id}).one()
    peak_mib = peak_rss_mib()
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib, "status": status, "error": error}),
          flush=True)


# Orchestration -----------------------------------------------------------------------------------------

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


def timed(function: Callable[..., T], *args: Any) -> tuple[T, float]:
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def run(kind: str, population: Population, n_members: int, *, keep: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="coop-bench-release-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(kind, workdir)
        try:
            upgrade_to_head(url)
            release_id = store_population(url, population, n_members)
            load_s = store_pings(url, population.pings)
            print(f"[{kind}] stored {population.pings.height:,} pings in {load_s:.1f} s", flush=True)
            build = build_in_child(url, release_id, workdir / "data")
            if build["status"] != "ready":
                raise SystemExit(f"[{kind}] the build failed: {build}")
            reference, polars_s = timed(polars_table, population.pings, population.consent_from_ms)
            _, plain_s = timed(plain_group_by, population.pings)
            released = released_table(workdir / "data", release_id)
            same = released.equals(reference)
            build_s = float(build["seconds"])
            print(f"[{kind}] builder: {build_s:.2f} s, peak RSS {float(build['peak_rss_mib']):.0f} MiB, "
                  f"{released.height:,} rows")
            print(f"[{kind}] Polars, same table in memory: {polars_s:.2f} s -> ratio {build_s / polars_s:.2f}x "
                  f"(target <= 2x); same rows: {same}")
            print(f"[{kind}] Polars, bare group_by n_unique: {plain_s:.2f} s -> ratio {build_s / plain_s:.2f}x")
            if not same:
                raise SystemExit(f"[{kind}] the release differs from the Polars table")
        finally:
            if not keep:
                drop_database(kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=10_000_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL bench database")
    parser.add_argument("--build-only", metavar="RELEASE_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        build_only(args.build_only)
        return
    population, generate_s = timed(generate, args.pings, args.members)
    print(f"generated {population.pings.height:,} pings for {args.members:,} members in {generate_s:.1f} s",
          flush=True)
    for kind in (["sqlite", "postgresql"] if args.database == "both" else [args.database]):
        run(kind, population, args.members, keep=args.keep)


if __name__ == "__main__":
    main()
