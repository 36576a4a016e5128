"""A deterministic synthetic population: residents with homes, workplaces, daily routines and consent choices.

Invariants: the same seed and size give the same residents and the same pings, byte for byte; every
ping lies inside ``REGION_BBOX``; timestamps are UTC and strictly increase per resident; nights are
spent at home (within GPS noise), weekdays mostly at work; the ping rate is high while moving and low
while stationary, as phone location services behave.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from coop.demo.geography import REGION_BBOX, TOWNS, WORKPLACES, Place

METRES_PER_DEG_LAT = 111_320.0

RawPing = tuple[datetime, tuple[float, float], float, float | None, str]
"""(time, (lat, lng), accuracy_m, speed_mps, activity) before ids and rounding."""

CONSENT_PROFILES: tuple[tuple[str, float], ...] = (
    ("public-minded", 0.55),   # gives transport, health, planning, environment
    ("transport-only", 0.15),
    ("everything", 0.08),      # also academic research and commercial insights
    ("never", 0.08),           # joins but never consents: nothing is stored
    ("withdraws", 0.07),       # gives, then withdraws transport-planning mid-period
    ("pauses", 0.07),          # gives, but pauses collection for some days
)

PURPOSES_BY_PROFILE: dict[str, tuple[str, ...]] = {
    "public-minded": ("transport-planning", "public-health", "urban-planning", "environment"),
    "transport-only": ("transport-planning",),
    "everything": ("transport-planning", "public-health", "urban-planning", "environment",
                   "academic-research", "commercial-insights"),
    "never": (),
    "withdraws": ("transport-planning", "urban-planning"),
    "pauses": ("transport-planning", "public-health"),
}


@dataclass(frozen=True)
class GeneratedPing:
    id: str
    ts: datetime
    lat: float
    lng: float
    accuracy_m: float
    speed_mps: float | None
    activity: str


@dataclass(frozen=True)
class Resident:
    index: int
    display_name: str
    home_town: str
    home: tuple[float, float]
    work: tuple[float, float] | None
    """None for residents who do not commute (retired, caring, remote)."""
    errand: tuple[float, float]
    consent_profile: str
    privacy_zone_at_home: bool
    seed: int = field(repr=False)

    @property
    def purposes(self) -> tuple[str, ...]:
        return PURPOSES_BY_PROFILE[self.consent_profile]


def _offset(rng: random.Random, lat: float, lng: float, spread_m: float) -> tuple[float, float]:
    distance = abs(rng.gauss(0.0, spread_m))
    bearing = rng.uniform(0.0, 2 * math.pi)
    dlat = distance * math.cos(bearing) / METRES_PER_DEG_LAT
    dlng = distance * math.sin(bearing) / (METRES_PER_DEG_LAT * math.cos(math.radians(lat)))
    return _clamp(lat + dlat, lng + dlng)


def _clamp(lat: float, lng: float) -> tuple[float, float]:
    min_lng, min_lat, max_lng, max_lat = REGION_BBOX
    return min(max(lat, min_lat), max_lat), min(max(lng, min_lng), max_lng)


def _choose(rng: random.Random, places: tuple[Place, ...]) -> Place:
    return rng.choices(places, weights=[p.weight for p in places], k=1)[0]


def make_population(*, size: int, seed: int = 2026) -> list[Resident]:
    """``size`` residents, the same for the same seed."""
    residents = []
    profiles, weights = zip(*CONSENT_PROFILES, strict=True)
    for index in range(size):
        rng = random.Random(f"{seed}:{index}")
        town = _choose(rng, TOWNS)
        home = _offset(rng, town.lat, town.lng, town.spread_m)
        commutes = rng.random() < 0.72
        workplace = _choose(rng, WORKPLACES)
        work = _offset(rng, workplace.lat, workplace.lng, workplace.spread_m) if commutes else None
        errand = _offset(rng, home[0], home[1], 900)
        residents.append(Resident(
            index=index, display_name=f"Resident {index + 1} of {town.name}", home_town=town.name,
            home=home, work=work, errand=errand,
            consent_profile=rng.choices(profiles, weights=weights, k=1)[0],
            privacy_zone_at_home=rng.random() < 0.12, seed=rng.randrange(2**32),
        ))
    return residents


def _noisy(rng: random.Random, point: tuple[float, float], accuracy_m: float) -> tuple[float, float]:
    return _offset(rng, point[0], point[1], accuracy_m / 2)


def _stay(rng: random.Random, *, place: tuple[float, float], start: datetime, end: datetime,
          indoor: bool) -> Iterator[RawPing]:
    """Sparse pings while stationary (every 20-45 minutes: significant-change mode)."""
    t = start + timedelta(seconds=rng.uniform(0, 300))
    while t < end:
        accuracy = rng.uniform(15, 60) if indoor else rng.uniform(5, 20)
        yield t, _noisy(rng, place, accuracy), accuracy, 0.0, "stationary"
        t += timedelta(seconds=rng.uniform(1200, 2700))


def _travel(rng: random.Random, *, origin: tuple[float, float], destination: tuple[float, float],
            start: datetime) -> tuple[list[RawPing], datetime]:
    """Dense pings (every 45-90 s) along a slightly curved path at a mode-dependent speed."""
    distance = _metres(origin, destination)
    mode, speed = ("walking", 1.4) if distance < 1500 else (("cycling", 4.5) if distance < 4000 and rng.random() < 0.3
                                                             else ("automotive", rng.uniform(7.0, 13.0)))
    duration = max(60.0, distance / speed)
    bend = rng.uniform(-0.15, 0.15)
    pings: list[RawPing] = []
    elapsed = rng.uniform(0, 30)
    while elapsed < duration:
        f = elapsed / duration
        lat = origin[0] + (destination[0] - origin[0]) * f + bend * f * (1 - f) * (destination[1] - origin[1])
        lng = origin[1] + (destination[1] - origin[1]) * f - bend * f * (1 - f) * (destination[0] - origin[0])
        accuracy = rng.uniform(4, 15)
        pings.append((start + timedelta(seconds=elapsed), _noisy(rng, (lat, lng), accuracy), accuracy,
                      max(0.0, rng.gauss(speed, speed * 0.2)), mode))
        elapsed += rng.uniform(45, 90)
    return pings, start + timedelta(seconds=duration)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * METRES_PER_DEG_LAT
    dlng = (b[1] - a[1]) * METRES_PER_DEG_LAT * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(dlat, dlng)


def pings_for_day(resident: Resident, day: date) -> list[GeneratedPing]:
    """One resident's pings for one UTC day: home, commute, work, errands, home."""
    rng = random.Random(f"{resident.seed}:{day.isoformat()}")
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end_of_day = midnight + timedelta(days=1)
    raw: list[RawPing] = []
    weekday = day.weekday() < 5
    leave = midnight + timedelta(hours=rng.uniform(7.0, 9.0) if weekday else rng.uniform(9.5, 12.0))
    raw += _stay(rng, place=resident.home, start=midnight, end=leave, indoor=True)
    here, t = resident.home, leave
    stops: list[tuple[tuple[float, float], float]] = []
    if weekday and resident.work is not None:
        stops.append((resident.work, rng.uniform(7.5, 9.0)))
    if rng.random() < (0.35 if weekday else 0.7):
        stops.append((resident.errand, rng.uniform(0.3, 1.5)))
    for place, hours in stops:
        leg, t = _travel(rng, origin=here, destination=place, start=t)
        raw += leg
        depart = min(t + timedelta(hours=hours), end_of_day - timedelta(hours=1))
        raw += _stay(rng, place=place, start=t, end=depart, indoor=True)
        here, t = place, depart
    if here != resident.home:
        leg, t = _travel(rng, origin=here, destination=resident.home, start=t)
        raw += leg
    raw += _stay(rng, place=resident.home, start=t, end=end_of_day, indoor=True)
    pings = []
    last: datetime | None = None
    for ts, (lat, lng), accuracy, speed, activity in raw:
        if ts >= end_of_day or (last is not None and ts <= last):
            continue
        last = ts
        pings.append(GeneratedPing(id=f"r{resident.index}-{int(ts.timestamp())}", ts=ts, lat=round(lat, 6),
                                   lng=round(lng, 6), accuracy_m=round(accuracy, 1),
                                   speed_mps=None if speed is None else round(speed, 2), activity=activity))
    return pings


def pings_between(resident: Resident, *, start: date, end: date) -> Iterator[GeneratedPing]:
    """The resident's pings for each day in [start, end)."""
    day = start
    while day < end:
        yield from pings_for_day(resident, day)
        day += timedelta(days=1)
