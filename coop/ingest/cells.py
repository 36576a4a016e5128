"""H3 indexing of pings and the cell ranges that can hold a privacy zone's pings.

Invariants:
- Cells are resolution ``FINEST_RESOLUTION`` (10) H3 indexes as signed 64-bit integers (an H3 index
  never sets bit 63, so the unsigned and signed values are the same number).
- ``zone_cell_ranges`` over-covers: every point within ``radius_m`` of the centre lies in a cell inside
  one of the ranges (callers check the exact distance after decrypting).
"""

from __future__ import annotations

import math

from h3.api import basic_int

from consent.zones import ZoneGeometry
from coop.kit.settings import FINEST_RESOLUTION

_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT
_DIGIT_BITS = 3
_MAX_RES = 15
# Edge lengths of resolution-10 cells vary around the 75.86 m average; these bounds are generous.
_EDGE_MAX_M = 1.4 * 75.863783
_EDGE_MIN_M = 0.6 * 75.863783
_MAX_RANGES = 32


def cell_of(lat: float, lng: float) -> int:
    """The resolution-10 cell containing the point, as a signed 64-bit integer."""
    cell: int = basic_int.latlng_to_cell(lat, lng, FINEST_RESOLUTION)
    return cell - (1 << 64) if cell >= 1 << 63 else cell


def descendant_range(parent: int, res: int) -> tuple[int, int]:
    """The smallest and largest index that a resolution-``res`` descendant of ``parent`` can have.

    Every valid resolution-``res`` cell in this inclusive range is a descendant of ``parent``: the
    range only varies the digits below the parent's resolution.
    """
    parent_res: int = basic_int.get_resolution(parent)
    low = high = (parent & ~_RES_MASK) | (res << _RES_SHIFT)
    for digit in range(parent_res + 1, res + 1):
        shift = (_MAX_RES - digit) * _DIGIT_BITS
        low &= ~(0b111 << shift)
        high = (high & ~(0b111 << shift)) | (0b110 << shift)
    return low, high


def zone_disk(zone: ZoneGeometry) -> set[int]:
    """Resolution-10 cells that together cover the zone's disc (with a margin)."""
    centre = cell_of(zone.lat, zone.lng)
    rings = math.ceil((zone.radius_m + _EDGE_MAX_M) / (1.5 * _EDGE_MIN_M)) + 1
    return set(basic_int.grid_disk(centre, rings))


def zone_cell_ranges(cells: set[int]) -> list[tuple[int, int]]:
    """A few inclusive index ranges whose resolution-10 cells include all of ``cells``."""
    parents = cells
    for res in range(FINEST_RESOLUTION - 1, -1, -1):
        parents = {basic_int.cell_to_parent(cell, res) for cell in cells}
        if len(parents) <= _MAX_RANGES:
            break
    return sorted(descendant_range(parent, FINEST_RESOLUTION) for parent in parents)
