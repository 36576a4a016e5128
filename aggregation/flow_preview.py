"""``preview.svg`` of an origin-destination release: a flow map a planner can read.

Each drawn flow is a curve from the origin hexagon's centre to the destination's, bending to its
right (so A->B and B->A sit side by side), ending in an arrowhead; its width and colour both grow
with the average members per bucket. Only the strongest ``MAX_FLOWS`` pairs are drawn (the subtitle
says how many of how many); the endpoints' hexagons are shaded for context, with the region's
towns labelled (``aggregation.gazetteer``), a legend, a scale bar and a north arrow.

Invariants: it shows only published rows; the projection is equirectangular, scaled by
cos(latitude) at the data's centre and fitted to the drawn flows' extent, with a scale bar computed
from that fit; stronger flows are drawn over weaker ones; the output is deterministic for a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import h3.api.basic_int as h3_int
import polars as pl

from aggregation.gazetteer import nearest, within
from aggregation.preview import (
    FONT,
    FOOTER,
    MAP_MARGIN,
    MAP_TOP,
    WIDTH,
    PreviewInfo,
    _label,
    _nice_up,
    _north_arrow,
    _period_text,
    _scale_bar,
    _unit,
    class_breaks,
)

MAX_FLOWS = 40
# ColorBrewer Blues, darker end (readable on the light map, colour-blind safe, prints in grey).
FLOW_RAMP = ["#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"]
MIN_WIDTH, MAX_WIDTH = 1.5, 12.0
_FOOTER = FOOTER + 16
_KM_PER_DEGREE = 111.32
_BEND = 0.16
_MAP_MAX_HEIGHT = 640


@dataclass(frozen=True)
class _Flow:
    origin: int
    destination: int
    resolution: int
    value: float


@dataclass(frozen=True)
class _Frame:
    min_lng: float
    max_lat: float
    x_factor: float
    scale: float
    x_offset: float
    y_top: float

    def xy(self, lat: float, lng: float) -> tuple[float, float]:
        return (self.x_offset + (lng - self.min_lng) * self.x_factor * self.scale,
                self.y_top + (self.max_lat - lat) * self.scale)


def strongest_flows(rows: pl.DataFrame, buckets: int, limit: int = MAX_FLOWS) -> tuple[list[_Flow], int]:
    """The ``limit`` pairs with most average members per bucket (ties to the smaller ids), and how
    many pairs there are in all."""
    per_pair = (rows.group_by("origin", "destination", "resolution")
                .agg((pl.col("members").sum() / max(1, buckets)).alias("value"))
                .sort(["value", "origin", "destination"], descending=[True, False, False]))
    flows = [_Flow(o, d, r, v) for o, d, r, v in per_pair.head(limit).iter_rows()]
    return flows, per_pair.height


def _width(value: float, top: float) -> float:
    return MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * value / top if top > 0 else MIN_WIDTH


def _colour(value: float, breaks: list[float]) -> str:
    for index, bound in enumerate(breaks):
        if value <= bound:
            return FLOW_RAMP[round(index * (len(FLOW_RAMP) - 1) / max(1, len(breaks) - 1))]
    return FLOW_RAMP[-1]


def _frame(flows: list[_Flow]) -> tuple[_Frame, float]:
    """The projection fitted to the flows' endpoints (with a margin), and the map's height."""
    points = [h3_int.cell_to_latlng(c) for f in flows for c in (f.origin, f.destination)]
    lats, lngs = [p[0] for p in points], [p[1] for p in points]
    lat0 = (min(lats) + max(lats)) / 2
    x_factor = math.cos(math.radians(lat0))
    pad = max(0.08 * max(max(lats) - min(lats), (max(lngs) - min(lngs)) * x_factor), 0.01)
    min_lat, max_lat = min(lats) - pad, max(lats) + pad
    min_lng, max_lng = min(lngs) - pad / x_factor, max(lngs) + pad / x_factor
    map_width = WIDTH - 2 * MAP_MARGIN
    span_x, span_y = (max_lng - min_lng) * x_factor, max_lat - min_lat
    scale = min(map_width / span_x, _MAP_MAX_HEIGHT / span_y)
    x_offset = MAP_MARGIN + (map_width - span_x * scale) / 2
    return _Frame(min_lng, max_lat, x_factor, scale, x_offset, MAP_TOP + MAP_MARGIN), span_y * scale


def _curve(frame: _Frame, flow: _Flow, width: float, colour: str, unit: str) -> str:
    (lat1, lng1), (lat2, lng2) = h3_int.cell_to_latlng(flow.origin), h3_int.cell_to_latlng(flow.destination)
    x1, y1 = frame.xy(lat1, lng1)
    x2, y2 = frame.xy(lat2, lng2)
    dx, dy = x2 - x1, y2 - y1
    length = max(math.hypot(dx, dy), 1e-6)
    cx, cy = (x1 + x2) / 2 - dy * _BEND, (y1 + y2) / 2 + dx * _BEND  # bends to the right of travel
    tx, ty = x2 - cx, y2 - cy
    tangent = max(math.hypot(tx, ty), 1e-6)
    ux, uy = tx / tangent, ty / tangent
    head = min(max(6.0, 1.7 * width), 0.35 * length)
    half = min(max(3.5, 1.1 * width), 0.25 * length)
    bx, by = x2 - ux * head, y2 - uy * head
    names = [nearest(lat, lng).name for lat, lng in ((lat1, lng1), (lat2, lng2))]
    title = (f"{escape(names[0])} \u2192 {escape(names[1])} ({format(flow.origin, 'x')} \u2192 "
             f"{format(flow.destination, 'x')}, res {flow.resolution}): {flow.value:.1f} members per {unit}")
    return (f'<g><title>{title}</title>'
            f'<path d="M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {bx:.1f},{by:.1f}" fill="none" stroke="{colour}" '
            f'stroke-width="{width:.1f}" stroke-linecap="round" stroke-opacity="0.85"/>'
            f'<path d="M{x2:.1f},{y2:.1f} L{bx - uy * half:.1f},{by + ux * half:.1f} '
            f'L{bx + uy * half:.1f},{by - ux * half:.1f} Z" fill="{colour}"/></g>')


def _labels(frame: _Frame, map_height: float) -> list[str]:
    """Town names inside the map, best-ranked first, skipping any that would overlap another."""
    top_left_lat = frame.max_lat
    bottom_lat = frame.max_lat - map_height / frame.scale
    right_lng = frame.min_lng + (WIDTH - 2 * MAP_MARGIN) / (frame.x_factor * frame.scale)
    placed: list[tuple[float, float, float, float]] = []
    parts: list[str] = []
    for place in within(frame.min_lng, bottom_lat, right_lng, top_left_lat):
        x, y = frame.xy(place.lat, place.lng)
        text_width = 7.2 * len(place.name)
        for side in (1, -1):  # right of the dot, else left of it
            left = x + 5 if side == 1 else x - 5 - text_width
            box = (left - 3, y - 17, left + text_width + 3, y + 3)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        else:
            continue
        placed.append(box)
        anchor = "start" if side == 1 else "end"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#1d2433"/>'
                     f'<text x="{x + 5 * side:.1f}" y="{y - 4:.1f}" font-size="13" fill="#1d2433" '
                     f'text-anchor="{anchor}" stroke="#ffffff" stroke-width="3" stroke-linejoin="round" '
                     f'paint-order="stroke">{escape(place.name)}</text>')
    return parts


def _legend(x: float, y: float, samples: list[float], top: float, breaks: list[float], unit: str) -> list[str]:
    parts = [f'<text x="{x:.1f}" y="{y:.1f}" font-size="13" font-weight="bold" fill="#1d2433">'
             f'Members travelling per {unit}, on average</text>']
    for index, value in enumerate(samples):
        lx = x + index * 120
        width = _width(value, top)
        parts.append(f'<line x1="{lx:.1f}" y1="{y + 22:.1f}" x2="{lx + 70:.1f}" y2="{y + 22:.1f}" '
                     f'stroke="{_colour(value, breaks)}" stroke-width="{width:.1f}" stroke-linecap="round"/>')
        parts.append(f'<text x="{lx + 35:.1f}" y="{y + 48:.1f}" font-size="11" fill="#3c4657" '
                     f'text-anchor="middle">{_label(value)}</text>')
    return parts


def _header(info: PreviewInfo, height: int, shown: int, total: int) -> list[str]:
    unit = _unit(info.time_bucket)
    which = f"all {total}" if shown == total else f"the {shown} strongest of {total}"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{MAP_MARGIN}" y="42" font-size="26" font-weight="bold" fill="#1d2433">'
        f'{escape(info.title)}</text>',
        f'<text x="{MAP_MARGIN}" y="70" font-size="16" fill="#3c4657">{escape(_period_text(info.period))}'
        f' \u00b7 {which} origin\u2013destination flows, by departure {unit}</text>',
        f'<text x="{MAP_MARGIN}" y="92" font-size="12.5" fill="#6b7280">Trips between the places members '
        f'stayed, H3 resolution {info.resolution} hexagons centre to centre; every number counts at least '
        f'{info.k} members.</text>',
    ]


def render_flow_preview(rows: pl.DataFrame, info: PreviewInfo) -> str:
    """The SVG document for an od release's published ``rows`` (bucket, origin, destination,
    resolution, members)."""
    buckets = max(1, info.period.bucket_count(info.time_bucket))
    flows, total = strongest_flows(rows, buckets)
    unit = _unit(info.time_bucket)
    if not flows:
        height = MAP_TOP + 260 + _FOOTER
        parts = _header(info, height, 0, 0)
        parts.append(f'<text x="{WIDTH / 2}" y="{MAP_TOP + 130}" font-size="18" fill="#6b7280" '
                     f'text-anchor="middle">No origin\u2013destination pair reached k = {info.k} members in '
                     f'this period.</text>')
        parts.append(f'<text x="{MAP_MARGIN}" y="{height - 24}" font-size="11" fill="#6b7280">'
                     f'{escape(info.source)}</text></svg>')
        return "\n".join(parts) + "\n"
    frame, map_height = _frame(flows)
    height = int(MAP_TOP + map_height + 2 * MAP_MARGIN + _FOOTER)
    values = [flow.value for flow in flows]
    top, breaks = max(values), class_breaks(values, classes=len(FLOW_RAMP))
    parts = _header(info, height, len(flows), total)
    parts.append(f'<rect x="{MAP_MARGIN / 2}" y="{MAP_TOP + MAP_MARGIN / 2}" width="{WIDTH - MAP_MARGIN}" '
                 f'height="{map_height + MAP_MARGIN:.1f}" fill="#eef2f6" rx="6"/>')
    parts.append('<g fill="#d3dae3" stroke="#ffffff" stroke-width="0.5">')
    for cell in sorted({c for flow in flows for c in (flow.origin, flow.destination)}):
        ring = " L".join("{:.1f},{:.1f}".format(*frame.xy(lat, lng)) for lat, lng in h3_int.cell_to_boundary(cell))
        parts.append(f'<path d="M{ring} Z"/>')
    parts.append("</g>")
    for flow in sorted(flows, key=lambda f: (f.value, -f.origin, -f.destination)):
        parts.append(_curve(frame, flow, _width(flow.value, top), _colour(flow.value, breaks), unit))
    parts += _labels(frame, map_height)
    footer_y = MAP_TOP + MAP_MARGIN + map_height + MAP_MARGIN + 30
    samples = sorted({_nice_up(top), _nice_up(top / 2), _nice_up(top / 8)} - {0.0}, reverse=True)
    parts += _legend(MAP_MARGIN, footer_y, samples, top, breaks, unit)
    parts += _scale_bar(WIDTH - MAP_MARGIN - 160, footer_y + 26, _KM_PER_DEGREE / frame.scale)
    parts += _north_arrow(WIDTH - MAP_MARGIN - 14, MAP_TOP + MAP_MARGIN + 6)
    parts.append(f'<text x="{MAP_MARGIN}" y="{height - 14}" font-size="11" fill="#6b7280">'
                 f'{escape(info.source)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"

