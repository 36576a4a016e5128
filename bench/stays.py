"""Stay and trip detection benchmark on a demo-shaped week, against a plain Polars group-by.

1. Generates a week of pings for ``--residents`` residents with the demo's own generator
   (``coop/demo/population.py``: homes in 15 towns, 10 workplaces, commutes, errands).
2. Positions: detects stays on the res-10 cell centres (what the sealer does) and on the exact
   coordinates, prints how far the two agree, and what decrypting the coordinates would cost
   (AES-GCM open + decode, measured on a sample, scaled to the run's pings).
3. Scales the week to ``--pings`` pings by cloning residents (new member numbers, each clone's day
   shifted by up to 45 minutes) and, in child processes reading the same Parquet file, times:
   - the baseline: ``group_by(member, day, res-9 cell).len()`` (what a presence seal counts);
   - stays + trips + daily contributions at res 9 over the whole week in one call;
   - the same as the sealer runs it: seven daily read windows (``read_window``: +-12 h), each read
     from Parquet with a predicate, detected and bucketed on its own;
   with each child's peak RSS.
4. Prints the ten strongest daily od pairs at res 7 in the demo week, named by the nearest towns.

Usage: ``python bench/stays.py [--residents 2500] [--pings 10000000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import h3
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregation.gazetteer import nearest
from aggregation.kanon import parent_cell_expr
from aggregation.periods import DAY_MS
from aggregation.stays import (
    detect_stays,
    detect_stays_at_points,
    detect_trips,
    read_window,
    stay_contributions,
    trip_contributions,
)
from coop.demo.population import make_population, pings_between
from coop.ingest.codec import FORMAT_VERSION, decode_payload, ping_aad
from coop.kit.crypto import DataKey

WEEK_START = date(2026, 11, 2)  # a Monday
WEEK_START_MS = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1000)
WEEK_END_MS = WEEK_START_MS + 7 * DAY_MS
RESOLUTION = 9


def demo_week(residents: int) -> pl.DataFrame:
    """member_no, ts_ms, cell (res 10), lat, lng for a week of the demo population, time-ordered."""
    members: list[int] = []
    times: list[int] = []
    lats: list[float] = []
    lngs: list[float] = []
    for resident in make_population(size=residents):
        for ping in pings_between(resident, start=WEEK_START, end=date(2026, 11, 9)):
            members.append(resident.index + 1)
            times.append(int(ping.ts.timestamp() * 1000))
            lats.append(ping.lat)
            lngs.append(ping.lng)
    cells = [h3.str_to_int(h3.latlng_to_cell(lat, lng, 10)) for lat, lng in zip(lats, lngs, strict=True)]
    return pl.DataFrame({"member_no": members, "ts_ms": times, "cell": cells, "lat": lats, "lng": lngs},
                        schema={"member_no": pl.Int64, "ts_ms": pl.Int64, "cell": pl.Int64,
                                "lat": pl.Float64, "lng": pl.Float64})


def scaled(week: pl.DataFrame, pings: int) -> pl.DataFrame:
    """``pings`` rows made of whole clones of the week (member numbers offset per clone, each
    clone-member's pings shifted by the same few minutes), ordered by member and time."""
    copies = max(1, math.ceil(pings / week.height))
    span = int(week.select(pl.col("member_no").max()).item() or 0) + 1
    clones = [week.select(pl.col("member_no") + copy * span,
                          pl.col("ts_ms") + ((pl.col("member_no") * 17 + copy * 131) % 91 - 45) * 60_000,
                          "cell")
              for copy in range(copies)]
    return pl.concat(clones).head(pings).sort("member_no", "ts_ms", "cell")


def _stays_and_trips(pings: pl.DataFrame, start_ms: int, end_ms: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    stays = detect_stays(pings)
    trips = detect_trips(stays, resolution=RESOLUTION)
    kept = {"bucket_ms": DAY_MS, "start_ms": start_ms, "end_ms": end_ms}
    return stay_contributions(stays, resolution=RESOLUTION, **kept), trip_contributions(trips, **kept)


def child(mode: str, path: str) -> dict[str, Any]:
    """One measurement in this process (so its peak RSS is its own)."""
    cpu = time.process_time()
    if mode == "daily":
        started = time.perf_counter()
        read = 0
        parts: list[tuple[pl.DataFrame, pl.DataFrame]] = []
        for day in range(7):
            start = WEEK_START_MS + day * DAY_MS
            read_from, read_to = read_window(start, start + DAY_MS)
            window = (pl.scan_parquet(path).filter(pl.col("ts_ms") >= read_from, pl.col("ts_ms") < read_to)
                      .collect())
            read += window.height
            parts.append(_stays_and_trips(window, start, start + DAY_MS))
        seconds = time.perf_counter() - started
        contributions = pl.concat([cells for cells, _ in parts])
        trips = pl.concat([pairs for _, pairs in parts])
        result: dict[str, Any] = {"seconds": seconds, "cpu": time.process_time() - cpu, "pings_read": read}
    else:
        pings = pl.read_parquet(path)
        started, cpu = time.perf_counter(), time.process_time()
        if mode == "groupby":
            table = pings.group_by("member_no", pl.col("ts_ms") // DAY_MS,
                                   parent_cell_expr(pl.col("cell"), RESOLUTION)).len()
            return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "rows": table.height,
                    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        contributions, trips = _stays_and_trips(pings, WEEK_START_MS, WEEK_END_MS)
        result = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}
    contributions.write_parquet(f"{path}.{mode}.cells.parquet")
    trips.write_parquet(f"{path}.{mode}.pairs.parquet")
    result["contributions"], result["pair_contributions"] = contributions.height, trips.height
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_child(mode: str, path: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, path], check=True, capture_output=True,
                         text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _keys(frame: pl.DataFrame, *columns: str) -> set[tuple[int, ...]]:
    return set(frame.select(columns).iter_rows())


def _jaccard(a: set[tuple[int, ...]], b: set[tuple[int, ...]]) -> float:
    return len(a & b) / max(1, len(a | b))


def positions(week: pl.DataFrame) -> None:
    started = time.perf_counter()
    by_cell = detect_stays(week.select("member_no", "ts_ms", "cell"))
    cell_seconds = time.perf_counter() - started
    started = time.perf_counter()
    by_point = detect_stays_at_points(week)
    point_seconds = time.perf_counter() - started
    print(f"positions ({week.height:,} pings): {by_cell.height:,} stays from cell centres "
          f"({cell_seconds:.2f} s), {by_point.height:,} from exact coordinates ({point_seconds:.2f} s)")
    for resolution in (10, 9, 7):
        cells = [stay_contributions(s, bucket_ms=DAY_MS, resolution=resolution,
                                    start_ms=WEEK_START_MS, end_ms=WEEK_END_MS) for s in (by_cell, by_point)]
        trips = [trip_contributions(detect_trips(s, resolution=resolution), bucket_ms=DAY_MS,
                                    start_ms=WEEK_START_MS, end_ms=WEEK_END_MS) for s in (by_cell, by_point)]
        print(f"  res {resolution:>2}: member-day stay cells agree {_jaccard(*(_keys(c, 'bucket', 'member_no', 'cell') for c in cells)):.1%}"
              f" (Jaccard); member-day od pairs agree "
              f"{_jaccard(*(_keys(t, 'bucket', 'member_no', 'origin', 'destination') for t in trips)):.1%}")
    key = DataKey(os.urandom(32))
    sample = week.head(100_000)
    blobs = [key.encrypt(struct.pack("<BBdd", FORMAT_VERSION, 0, lat, lng), ping_aad(member, str(ts)))
             for member, ts, lat, lng in sample.select("member_no", "ts_ms", "lat", "lng").iter_rows()]
    started = time.perf_counter()
    for blob, (member, ts) in zip(blobs, sample.select("member_no", "ts_ms").iter_rows(), strict=True):
        decode_payload(key.decrypt(blob, ping_aad(member, str(ts))))
    per_ping = (time.perf_counter() - started) / sample.height
    print(f"  decrypting coordinates: {per_ping * 1e6:.2f} us per ping (AES-GCM open + decode, one key), "
          f"{per_ping * 1e7:.1f} s per 10M pings, before unwrapping each member's key; "
          f"cell-centre detection took {cell_seconds / week.height * 1e7:.1f} s per 10M pings in all")


def strongest_pairs(week: pl.DataFrame) -> None:
    stays = detect_stays(week.select("member_no", "ts_ms", "cell"))
    pairs = (trip_contributions(detect_trips(stays, resolution=7), bucket_ms=DAY_MS,
                                start_ms=WEEK_START_MS, end_ms=WEEK_END_MS)
             .group_by("bucket", "origin", "destination").agg(pl.col("member_no").n_unique().alias("members"))
             .group_by("origin", "destination").agg((pl.col("members").sum() / 7).alias("per_day"))
             .sort("per_day", "origin", "destination", descending=[True, False, False]).head(10))
    print("ten strongest daily od pairs at res 7 (members per day, exact, named by the nearest town):")
    for origin, destination, per_day in pairs.iter_rows():
        names = [nearest(*h3.cell_to_latlng(h3.int_to_str(c))).name for c in (origin, destination)]
        print(f"  {names[0]:>12} -> {names[1]:<12} {per_day:7.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--residents", type=int, default=2500)
    parser.add_argument("--pings", type=int, default=10_000_000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    started = time.perf_counter()
    week = demo_week(args.residents)
    print(f"demo week: {args.residents:,} residents, {week.height:,} pings "
          f"(generated in {time.perf_counter() - started:.0f} s)")
    positions(week)
    strongest_pairs(week)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "pings.parquet")
        pings = scaled(week, args.pings)
        pings.write_parquet(path)
        print(f"scaled: {pings.height:,} pings, {pings.get_column('member_no').n_unique():,} members")
        del pings
        base = run_child("groupby", path)
        week_run = run_child("week", path)
        daily = run_child("daily", path)
        agreement = [_jaccard(*(_keys(pl.read_parquet(f"{path}.{mode}.{kind}.parquet"), *columns)
                                for mode in ("week", "daily")))
                     for kind, columns in (("cells", ("bucket", "member_no", "cell")),
                                           ("pairs", ("bucket", "member_no", "origin", "destination")))]
    print(f"  group_by(member, day, cell) baseline: {base['seconds']:.2f} s (CPU {base['cpu']:.2f} s), "
          f"peak RSS {base['peak_rss_mib']:.0f} MiB")
    print(f"  stays + trips, whole week at once:    {week_run['seconds']:.2f} s "
          f"({week_run['seconds'] / base['seconds']:.1f}x the group-by; CPU {week_run['cpu']:.2f} s, "
          f"{week_run['cpu'] / base['cpu']:.1f}x), peak RSS {week_run['peak_rss_mib']:.0f} MiB, "
          f"{week_run['contributions']:,} stay and {week_run['pair_contributions']:,} od contributions")
    print(f"  stays + trips, seven sealer windows:  {daily['seconds']:.2f} s "
          f"({daily['seconds'] / base['seconds']:.1f}x the group-by; CPU {daily['cpu']:.2f} s; reads {daily['pings_read']:,} pings incl. "
          f"look-back/ahead), peak RSS {daily['peak_rss_mib']:.0f} MiB")
    print(f"  the windows agree with the whole week on {agreement[0]:.2%} of stay and {agreement[1]:.2%} of od "
          f"contributions (Jaccard)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
