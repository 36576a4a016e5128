"""The pure sealing engine against a plain Polars group-by, in memory, in one run.

Builds a week of synthetic pings (res-10 cells around a city; each member mostly at home and work),
then times (a) the baseline: group the pings by (member, day, res-9 cell) and count, and (b) the same
group-by followed by ``seal_cells`` for each daily bucket (bounding, three levels of OpenDP noise,
generalisation) at the default budget. Prints both, the ratio, the OpenDP draws and peak RSS.

    .venv/bin/python bench/seal_engine.py --pings 10000000
"""

from __future__ import annotations

import argparse
import resource
import time

import h3
import numpy as np
import polars as pl

from aggregation.dp import Kind, plan_noise
from aggregation.kanon import parent_cell_expr
from aggregation.periods import DAY_MS, TimeBucket
from aggregation.sealing import seal_cells

PINGS_PER_MEMBER_DAY = 150


def synthetic_pings(pings: int, *, seed: int = 7) -> pl.DataFrame:
    """member_no, ts_ms, cell (res 10): homes and workplaces over ~19k cells, some wandering."""
    generator = np.random.default_rng(seed)  # test data only; DP noise always comes from OpenDP
    centre = h3.latlng_to_cell(53.4084, -2.9916, 10)
    pool = np.array([h3.str_to_int(cell) for cell in h3.grid_disk(centre, 80)], dtype=np.int64)
    members = max(1, pings // (7 * PINGS_PER_MEMBER_DAY))
    homes = generator.integers(0, pool.size, members)
    works = generator.integers(0, 200, members) * (pool.size // 200)  # 200 workplaces
    member = generator.integers(0, members, pings)
    choice = generator.random(pings)
    index = np.where(choice < 0.7, homes[member], np.where(choice < 0.9, works[member],
                                                           generator.integers(0, pool.size, pings)))
    return pl.DataFrame({"member_no": member.astype(np.int64),
                         "ts_ms": generator.integers(0, 7 * DAY_MS, pings, dtype=np.int64),
                         "cell": pool[index]})


def grouped(pings: pl.DataFrame) -> pl.DataFrame:
    return (pings.lazy().group_by("member_no", (pl.col("ts_ms") // DAY_MS * DAY_MS).alias("bucket"),
                                  parent_cell_expr(pl.col("cell"), 9).alias("cell"))
            .agg(pl.len().cast(pl.Int64).alias("weight")).collect())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    plan = plan_noise(kind=Kind.PRESENCE, time_bucket=TimeBucket.DAY, resolution=9, coarsest_resolution=7,
                      epsilon_per_day=0.5, delta=1e-7, k_floor=10)
    pings = synthetic_pings(args.pings)
    baseline, sealing = [], []
    draws = rows = 0
    for _ in range(args.repeat):
        started = time.perf_counter()
        lines = grouped(pings)
        baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        lines = grouped(pings)
        for part in lines.partition_by("bucket"):
            sealed = seal_cells(part, plan=plan)
            rows += sealed.rows.height
        sealing.append(time.perf_counter() - started)
        draws = lines.select("bucket", "cell").unique().height  # the finest level's draws
    base, seal = min(baseline), min(sealing)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pings {args.pings:,}  members {pings.get_column('member_no').n_unique():,}  "
          f"(member, day, cell) lines {lines.height:,}")
    print(f"plan: sigma {plan.sigma:.2f}  tau {plan.tau}  (presence, day, res 9..7, eps 0.5/day)")
    print(f"plain Polars group-by        {base:8.3f} s")
    print(f"group-by + seal_cells (7 d)  {seal:8.3f} s   ratio {seal / base:5.2f}x   "
          f"per million pings {seal / args.pings * 1e6:6.3f} s")
    print(f"OpenDP draws at the finest level {draws:,}; published rows per run {rows // args.repeat:,}")
    print(f"peak RSS {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
