"""Hand-built daily routines as res-10 pings: dwelling at a place and driving between two places."""

from __future__ import annotations

from datetime import datetime, timedelta

import h3


def cell10(point: tuple[float, float]) -> str:
    return str(h3.latlng_to_cell(point[0], point[1], 10))


def cell_at(point: tuple[float, float], resolution: int) -> str:
    """The point's res-10 cell's parent at ``resolution`` (where sealing counts it)."""
    return str(h3.cell_to_parent(cell10(point), resolution))


def dwell(start: datetime, end: datetime, point: tuple[float, float], every_min: int = 10) -> list[tuple[datetime, str]]:
    steps = int((end - start) / timedelta(minutes=every_min))
    return [(start + i * timedelta(minutes=every_min), cell10(point)) for i in range(steps + 1)]


def drive(start: datetime, end: datetime, origin: tuple[float, float],
          destination: tuple[float, float]) -> list[tuple[datetime, str]]:
    """A ping each minute on the way, none within 10% of the distance of either end."""
    minutes = int((end - start) / timedelta(minutes=1))
    out = []
    for i in range(minutes + 1):
        f = 0.1 + 0.8 * i / max(1, minutes)
        out.append((start + timedelta(minutes=i), cell10((origin[0] + (destination[0] - origin[0]) * f,
                                                          origin[1] + (destination[1] - origin[1]) * f))))
    return out


def commute(day_start: datetime, home: tuple[float, float], work: tuple[float, float]) -> list[tuple[datetime, str]]:
    """Home 06:00-08:00, drive, work 08:40-17:00, drive back, home 17:40-23:00 (``day_start`` = midnight)."""
    h = timedelta(hours=1)
    m = timedelta(minutes=1)
    return (dwell(day_start + 6 * h, day_start + 8 * h, home)
            + drive(day_start + 8 * h + 5 * m, day_start + 8 * h + 35 * m, home, work)
            + dwell(day_start + 8 * h + 40 * m, day_start + 17 * h, work)
            + drive(day_start + 17 * h + 5 * m, day_start + 17 * h + 35 * m, work, home)
            + dwell(day_start + 17 * h + 40 * m, day_start + 23 * h, home))
