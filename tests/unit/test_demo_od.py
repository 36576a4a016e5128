"""The demo population's daily od table at resolution 7, sealed by the pure engine at the default budget
(epsilon 0.5 per member-day, delta 1e-7, k floor 10: tau 241): its ten strongest published pairs are
commuting pairs the generator made (a resident's home cell to their workplace's cell, or back).

tau 241 needs a few hundred commuters on one pair, and the demo's workplaces draw from every town, so
this uses a large draw of the generator (80,000 residents, one weekday): far more than ``make run``
loads (the demo's own od release, at 2,500 residents, publishes little at this budget)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import h3.api.basic_int as h3_int
import polars as pl
import pytest

from aggregation.dp import Kind, plan_noise
from aggregation.periods import DAY_MS, TimeBucket
from aggregation.sealing import seal_pairs
from aggregation.stays import detect_stays, detect_trips, trip_contributions
from coop.demo.population import Resident, make_population, pings_for_day

RESIDENTS = 80_000
WEEKDAY = date(2026, 11, 17)  # a Tuesday
RESOLUTION = 7


def _pings(residents: list[Resident]) -> pl.DataFrame:
    members: list[int] = []
    times: list[int] = []
    cells: list[int] = []
    for resident in residents:
        for ping in pings_for_day(resident, WEEKDAY):
            members.append(resident.index)
            times.append(int(ping.ts.timestamp() * 1000))
            cells.append(h3_int.latlng_to_cell(ping.lat, ping.lng, 10))
    return pl.DataFrame({"member_no": members, "ts_ms": times, "cell": cells},
                        schema={"member_no": pl.Int64, "ts_ms": pl.Int64, "cell": pl.Int64})


def _commuting_pairs(residents: list[Resident]) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for resident in residents:
        if resident.work is not None:
            home = h3_int.latlng_to_cell(*resident.home, RESOLUTION)
            work = h3_int.latlng_to_cell(*resident.work, RESOLUTION)
            pairs |= {(home, work), (work, home)}
    return pairs


@pytest.mark.slow
def test_the_ten_strongest_daily_od_pairs_are_commutes() -> None:
    residents = [r for r in make_population(size=RESIDENTS, seed=2026) if "transport-planning" in r.purposes]
    plan = plan_noise(kind=Kind.OD, time_bucket=TimeBucket.DAY, resolution=RESOLUTION,
                      coarsest_resolution=RESOLUTION, epsilon_per_day=0.5, delta=1e-7, k_floor=10)
    start_ms = int(datetime(WEEKDAY.year, WEEKDAY.month, WEEKDAY.day, tzinfo=UTC).timestamp() * 1000)
    trips = detect_trips(detect_stays(_pings(residents)), resolution=RESOLUTION)
    lines = trip_contributions(trips, bucket_ms=DAY_MS, start_ms=start_ms, end_ms=start_ms + DAY_MS)
    sealed = seal_pairs(lines.with_columns(pl.lit(0, dtype=pl.Int64).alias("bucket")), plan=plan).rows
    strongest = sealed.sort("members", "origin", "destination", descending=[True, False, False]).head(10)
    assert strongest.height == 10, f"only {sealed.height} pairs reached tau {plan.tau}"
    assert (strongest.get_column("members") >= plan.tau).all()
    commutes = _commuting_pairs(residents)
    found = list(zip(strongest.get_column("origin").to_list(), strongest.get_column("destination").to_list(),
                     strict=True))
    assert all(pair in commutes for pair in found), [
        (format(o, "x"), format(d, "x")) for o, d in found if (o, d) not in commutes]
