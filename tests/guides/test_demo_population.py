"""The synthetic population: deterministic, inside the region, realistic routines."""

from __future__ import annotations

from collections import Counter
from datetime import date
from itertools import pairwise

from consent.zones import distance_m
from coop.demo.geography import REGION_BBOX
from coop.demo.population import make_population, pings_between, pings_for_day


def test_same_seed_same_population_and_pings() -> None:
    first = make_population(size=50, seed=7)
    second = make_population(size=50, seed=7)
    assert first == second
    assert pings_for_day(first[3], date(2026, 11, 16)) == pings_for_day(second[3], date(2026, 11, 16))
    assert make_population(size=50, seed=8) != first


def test_pings_stay_in_the_region_and_increase_in_time() -> None:
    min_lng, min_lat, max_lng, max_lat = REGION_BBOX
    for resident in make_population(size=40, seed=1):
        pings = list(pings_between(resident, start=date(2026, 11, 16), end=date(2026, 11, 19)))
        assert pings
        assert all(min_lat <= p.lat <= max_lat and min_lng <= p.lng <= max_lng for p in pings)
        assert all(a.ts < b.ts for a, b in pairwise(pings))
        assert len({p.id for p in pings}) == len(pings)


def test_nights_are_at_home_and_commuters_reach_work_on_weekdays() -> None:
    monday = date(2026, 11, 16)
    commuters = [r for r in make_population(size=60, seed=3) if r.work is not None]
    assert commuters
    for resident in commuters:
        pings = pings_for_day(resident, monday)
        night = [p for p in pings if p.ts.hour < 5]
        assert night and all(distance_m(p.lat, p.lng, *resident.home) < 300 for p in night)
        work = resident.work
        assert work is not None
        assert any(distance_m(p.lat, p.lng, *work) < 300 for p in pings if 11 <= p.ts.hour < 15)


def test_a_mix_of_consent_choices_and_a_realistic_volume() -> None:
    residents = make_population(size=1000, seed=11)
    profiles = Counter(r.consent_profile for r in residents)
    assert {"never", "withdraws", "pauses", "public-minded"} <= set(profiles)
    assert 50 < sum(r.privacy_zone_at_home for r in residents) < 200
    towns = {r.home_town for r in residents}
    assert {"Liverpool", "Birkenhead", "Southport", "St Helens", "Runcorn"} <= towns
    per_day = [len(pings_for_day(r, date(2026, 11, 17))) for r in residents[:100]]
    assert 20 < sum(per_day) / len(per_day) < 150
