"""Liverpool City Region places at their real coordinates (WGS 84), weighted by rough population."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lng: float
    weight: float
    """Relative share of residents (homes) or jobs (workplaces)."""
    spread_m: float
    """Typical distance of homes or offices from the centre point."""


TOWNS: tuple[Place, ...] = (
    Place("Liverpool", 53.4084, -2.9916, 40.0, 3500),
    Place("Birkenhead", 53.3934, -3.0148, 8.0, 1800),
    Place("Wallasey", 53.4231, -3.0650, 5.5, 1500),
    Place("Bootle", 53.4460, -2.9923, 5.0, 1200),
    Place("Crosby", 53.4872, -3.0343, 3.5, 1200),
    Place("Southport", 53.6458, -3.0050, 7.5, 1800),
    Place("Formby", 53.5530, -3.0710, 2.0, 1000),
    Place("Maghull", 53.5166, -2.9412, 2.5, 1000),
    Place("Kirkby", 53.4817, -2.8920, 3.0, 1000),
    Place("Huyton", 53.4115, -2.8413, 4.0, 1200),
    Place("Prescot", 53.4286, -2.8064, 1.5, 800),
    Place("Halewood", 53.3597, -2.8311, 1.5, 800),
    Place("St Helens", 53.4539, -2.7375, 8.0, 1800),
    Place("Widnes", 53.3618, -2.7337, 4.5, 1300),
    Place("Runcorn", 53.3417, -2.7313, 4.5, 1300),
)

WORKPLACES: tuple[Place, ...] = (
    Place("Liverpool city centre", 53.4055, -2.9850, 30.0, 700),
    Place("Knowledge Quarter", 53.4060, -2.9650, 10.0, 500),
    Place("Liverpool docks", 53.4420, -3.0030, 5.0, 900),
    Place("Speke and the airport", 53.3420, -2.8570, 6.0, 1200),
    Place("Aintree", 53.4740, -2.9560, 3.0, 700),
    Place("Birkenhead centre", 53.3920, -3.0200, 6.0, 600),
    Place("Southport centre", 53.6480, -3.0070, 5.0, 600),
    Place("St Helens centre", 53.4530, -2.7360, 5.0, 600),
    Place("Widnes and Runcorn", 53.3550, -2.7350, 5.0, 1200),
    Place("Knowsley industrial park", 53.4700, -2.8600, 5.0, 900),
)

REGION_BBOX = (-3.15, 53.29, -2.60, 53.72)
"""(min_lng, min_lat, max_lng, max_lat) covering the six boroughs with a margin."""
