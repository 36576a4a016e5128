"""Place names for maps: the Liverpool City Region's towns, and the large workplaces away from any
town centre, at their real coordinates (WGS 84).

Pure data plus two lookups. The towns are the demo population's home towns and the workplaces three
of its workplaces (``coop/demo/geography`` keeps its own copy with population weights and spreads; a
unit test keeps the two in step). ``rank`` orders labels when they compete for space: 1 is the largest
town; workplaces come after every town.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class NamedPlace:
    name: str
    lat: float
    lng: float
    rank: int


TOWNS: tuple[NamedPlace, ...] = tuple(
    NamedPlace(name, lat, lng, rank) for rank, (name, lat, lng) in enumerate((
        ("Liverpool", 53.4084, -2.9916), ("Birkenhead", 53.3934, -3.0148), ("St Helens", 53.4539, -2.7375),
        ("Southport", 53.6458, -3.0050), ("Wallasey", 53.4231, -3.0650), ("Bootle", 53.4460, -2.9923),
        ("Widnes", 53.3618, -2.7337), ("Runcorn", 53.3417, -2.7313), ("Huyton", 53.4115, -2.8413),
        ("Crosby", 53.4872, -3.0343), ("Kirkby", 53.4817, -2.8920), ("Maghull", 53.5166, -2.9412),
        ("Formby", 53.5530, -3.0710), ("Prescot", 53.4286, -2.8064), ("Halewood", 53.3597, -2.8311),
    ), start=1))

WORKPLACES: tuple[NamedPlace, ...] = (
    NamedPlace("Speke and the airport", 53.3420, -2.8570, len(TOWNS) + 1),
    NamedPlace("Knowsley industrial park", 53.4700, -2.8600, len(TOWNS) + 2),
    NamedPlace("Aintree", 53.4740, -2.9560, len(TOWNS) + 3),
)
PLACES: tuple[NamedPlace, ...] = TOWNS + WORKPLACES


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres (haversine on the mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(a)))


def nearest(lat: float, lng: float, places: tuple[NamedPlace, ...] = PLACES) -> NamedPlace:
    """The place closest to the point (ties to the better rank)."""
    return min(places, key=lambda place: (distance_m(lat, lng, place.lat, place.lng), place.rank))


def within(min_lng: float, min_lat: float, max_lng: float, max_lat: float,
           places: tuple[NamedPlace, ...] = PLACES) -> list[NamedPlace]:
    """The places inside the box (edges included), best rank first."""
    return sorted((p for p in places if min_lat <= p.lat <= max_lat and min_lng <= p.lng <= max_lng),
                  key=lambda place: place.rank)
