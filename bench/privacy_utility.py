"""What the co-op's privacy costs its licensees: utility of sealed tables on the demo population.

1. Generates the demo week (``coop/demo/population.py``, the size ``coop demo`` uses) in memory, with
   the story's consent effects on a transport-planning family: "never" residents give nothing, "pauses"
   residents nothing on their paused days, "withdraws" residents nothing from mid-week, and pings
   within 200 m of a home with a privacy zone are dropped (as the zone purge does).
2. For each family (presence res 7/8/9 x hour/day/week; stays and od res 7/8/9 x day, and x hour/week
   unless ``--quick``) seals the week with the real engine (``aggregation.sealing``: bounding, OpenDP
   noise, generalisation level by level) under the plan ``plan_noise`` derives from the COOP settings
   (``epsilon_per_day``, ``dp_delta``, ``k_floor``; coarsest resolution 7), and prints:
   - ``published``: the share of bounded contributions (member, bucket, key) counted in a published row,
     at their own key or a parent;
   - ``median err``: the median over published rows of |noisy - exact| / exact, where exact is the
     row's pre-noise count (the distinct members pending at that key and level);
   - ``rows``: published rows; ``tau`` and ``sigma`` of the plan.
3. Presence res 8 x day and od res 7 x day again at epsilon 2.0 and 8.0 (the trade-off).

Figures vary a little from run to run (the noise is fresh each time; the population is fixed).

    .venv/bin/python bench/privacy_utility.py [--residents 2500] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import h3
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregation.dp import Kind, NoisePlan, plan_noise
from aggregation.kanon import parent_cell_expr
from aggregation.periods import DAY_MS, TimeBucket
from aggregation.sealing import bound_lines, generalise, noisy_decision
from aggregation.stays import detect_stays, detect_trips, stay_contributions, trip_contributions
from coop.demo.population import METRES_PER_DEG_LAT, Resident, make_population, pings_for_day
from coop.demo.story import PAUSED_DAYS
from coop.kit.settings import Settings

WEEK_START = date(2026, 11, 2)  # a Monday: the week bucket is the whole demo week
DAYS = 7
WEEK_START_MS = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1000)
WEEK_END_MS = WEEK_START_MS + DAYS * DAY_MS
ZONE_RADIUS_M = 200.0  # the story's home privacy zone
WITHDRAW_DAY = DAYS // 2  # the story withdraws transport-planning before this day's pings


def _stored_days(resident: Resident) -> list[int]:
    """Days of the week whose pings reach a transport-planning family (the story's consent effects)."""
    if "transport-planning" not in resident.purposes:
        return []
    if resident.consent_profile == "pauses":
        return [day for day in range(DAYS) if day not in PAUSED_DAYS]
    if resident.consent_profile == "withdraws":
        return list(range(WITHDRAW_DAY))
    return list(range(DAYS))


def _in_zone(resident: Resident, lat: float, lng: float) -> bool:
    if not resident.privacy_zone_at_home:
        return False
    dlat = (lat - resident.home[0]) * METRES_PER_DEG_LAT
    dlng = (lng - resident.home[1]) * METRES_PER_DEG_LAT * math.cos(math.radians(lat))
    return math.hypot(dlat, dlng) <= ZONE_RADIUS_M


def demo_week(residents: int) -> pl.DataFrame:
    """member_no, ts_ms, cell (res 10) of the pings a transport-planning family may seal."""
    members: list[int] = []
    times: list[int] = []
    cells: list[int] = []
    for resident in make_population(size=residents):
        for offset in _stored_days(resident):
            for ping in pings_for_day(resident, WEEK_START + timedelta(days=offset)):
                if _in_zone(resident, ping.lat, ping.lng):
                    continue
                members.append(resident.index + 1)
                times.append(int(ping.ts.timestamp() * 1000))
                cells.append(h3.str_to_int(h3.latlng_to_cell(ping.lat, ping.lng, 10)))
    return pl.DataFrame({"member_no": members, "ts_ms": times, "cell": cells},
                        schema={"member_no": pl.Int64, "ts_ms": pl.Int64, "cell": pl.Int64})


@dataclass(frozen=True)
class Utility:
    contributions: int
    published_contributions: int
    rows: int
    median_relative_error: float

    @property
    def published_share(self) -> float:
        return self.published_contributions / self.contributions if self.contributions else 0.0


def presence_lines(pings: pl.DataFrame, time_bucket: TimeBucket, resolution: int) -> pl.DataFrame:
    length = time_bucket.length_ms
    return (pings.lazy()
            .group_by(((pl.col("ts_ms") - WEEK_START_MS) // length).alias("bucket"), "member_no",
                      parent_cell_expr(pl.col("cell"), resolution).alias("cell"))
            .agg(pl.len().cast(pl.Int64).alias("weight")).collect())


def measure(lines: pl.DataFrame, keys: list[str], plan: NoisePlan) -> Utility:
    """Seal ``lines`` with the real engine, keeping each level's exact counts beside the noisy ones."""
    noisy = noisy_decision(plan)
    exact_of_published: list[pl.DataFrame] = []
    group = ["bucket", *keys]

    def decide(level: int, counts: pl.DataFrame) -> pl.DataFrame:
        kept = noisy(level, counts)
        exact_of_published.append(
            kept.join(counts.rename({"members": "exact"}), on=group)
            .with_columns(pl.lit(level, dtype=pl.Int64).alias("resolution")))
        return kept

    contributions = bound_lines(lines, keys=keys, plan=plan)
    generalise(contributions, keys=keys, plan=plan, decide=decide)
    published = pl.concat(exact_of_published) if exact_of_published else pl.DataFrame()
    if published.height == 0:
        return Utility(contributions.height, 0, 0, math.nan)
    # a contribution is published at the finest level whose row holds its key's ancestor
    remaining = contributions.select("member_no", *group)
    counted = 0
    for level in range(plan.resolution, plan.coarsest_resolution - 1, -1):
        at_level = remaining.with_columns([parent_cell_expr(pl.col(key), level).alias(f"_{key}") for key in keys])
        rows = published.filter(pl.col("resolution") == level).select(
            "bucket", *[pl.col(key).alias(f"_{key}") for key in keys])
        hit = at_level.join(rows, on=["bucket", *[f"_{key}" for key in keys]], how="semi")
        counted += hit.height
        remaining = at_level.join(rows, on=["bucket", *[f"_{key}" for key in keys]], how="anti").select(
            "member_no", *group)
    error = ((pl.col("members") - pl.col("exact")).abs() / pl.col("exact")).median()
    return Utility(contributions.height, counted, published.height, float(published.select(error).item()))


def plan_for(kind: Kind, time_bucket: TimeBucket, resolution: int, settings: Settings,
             epsilon: float | None = None) -> NoisePlan:
    return plan_noise(kind=kind, time_bucket=time_bucket, resolution=resolution,
                      coarsest_resolution=settings.coarsest_resolution,
                      epsilon_per_day=settings.family_epsilon_per_day if epsilon is None else epsilon,
                      delta=settings.dp_delta, k_floor=settings.k_floor)


def _line(kind: Kind, time_bucket: TimeBucket, resolution: int, plan: NoisePlan, result: Utility,
          seconds: float) -> str:
    error = "-" if math.isnan(result.median_relative_error) else f"{result.median_relative_error:.1%}"
    return (f"{kind.value:<8} {time_bucket.value:<5} {resolution:>3} {plan.epsilon_per_day:>5.1f} "
            f"{plan.tau:>4} {plan.sigma:>6.1f} {result.contributions:>9,} {result.published_share:>9.1%} "
            f"{error:>10} {result.rows:>7,} {seconds:>6.1f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--residents", type=int, default=2500, help="demo residents (default: coop demo's 2500)")
    parser.add_argument("--quick", action="store_true", help="stays and od at day buckets only")
    args = parser.parse_args()
    settings = Settings()
    started = time.perf_counter()
    pings = demo_week(args.residents)
    stays = detect_stays(pings, radius_m=settings.stay_radius_m, min_minutes=settings.stay_min_minutes)
    print(f"demo week: {args.residents:,} residents, {pings.get_column('member_no').n_unique():,} contributing, "
          f"{pings.height:,} pings, {stays.height:,} stays ({time.perf_counter() - started:.0f} s); "
          f"epsilon_per_day {settings.family_epsilon_per_day}, delta {settings.dp_delta:g}, "
          f"k_floor {settings.k_floor}, coarsest resolution {settings.coarsest_resolution}")
    print("kind     bucket res   eps  tau  sigma   contrib published median err    rows   time")
    derived = [TimeBucket.DAY] if args.quick else list(TimeBucket)
    runs: list[tuple[Kind, TimeBucket, int, float | None]] = []
    runs += [(Kind.PRESENCE, bucket, res, None) for bucket in TimeBucket for res in (7, 8, 9)]
    runs += [(kind, bucket, res, None) for kind in (Kind.STAYS, Kind.OD) for bucket in derived for res in (7, 8, 9)]
    runs += [(kind, TimeBucket.DAY, res, epsilon) for kind, res in ((Kind.PRESENCE, 8), (Kind.OD, 7))
             for epsilon in (2.0, 8.0)]
    for kind, time_bucket, resolution, epsilon in runs:
        began = time.perf_counter()
        plan = plan_for(kind, time_bucket, resolution, settings, epsilon)
        length = time_bucket.length_ms
        if kind is Kind.PRESENCE:
            lines, keys = presence_lines(pings, time_bucket, resolution), ["cell"]
        elif kind is Kind.STAYS:
            lines = stay_contributions(stays, bucket_ms=length, resolution=resolution, start_ms=WEEK_START_MS,
                                       end_ms=WEEK_END_MS)
            keys = ["cell"]
        else:
            lines = trip_contributions(detect_trips(stays, resolution=resolution), bucket_ms=length,
                                       start_ms=WEEK_START_MS, end_ms=WEEK_END_MS)
            keys = ["origin", "destination"]
        result = measure(lines, keys, plan)
        print(_line(kind, time_bucket, resolution, plan, result, time.perf_counter() - began), flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
