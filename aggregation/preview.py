"""``preview.svg``: a map of a release's hexagons, shaded by member density.

Each hexagon is shaded by its average members per bucket divided by its area (members per km²), so a
large generalised hexagon and a small one are read on the same scale (a choropleth of raw counts would
make big hexagons look busiest).

Invariants: it shows only published rows (never anything below k); the projection is equirectangular,
scaled by cos(latitude) at the data's centre and fitted to the data's extent (no fixed scale), with a
scale bar computed from that fit; coarser (generalised) cells are drawn first so finer ones sit on top;
the output is deterministic for a given table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from html import escape

import h3.api.basic_int as h3_int
import polars as pl

from aggregation.periods import Period, TimeBucket

# ColorBrewer YlOrRd (sequential, colour-blind safe, prints in grey).
RAMP = ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"]
WIDTH = 960
MAP_TOP, MAP_MARGIN, FOOTER = 108, 24, 112
FONT = "Helvetica, Arial, sans-serif"
_KM_PER_DEGREE = 111.32


@dataclass(frozen=True)
class PreviewInfo:
    title: str
    period: Period
    time_bucket: TimeBucket
    resolution: int
    k: int
    source: str
    what: str = "where co-op members were"
    """The map's subject, after the period (a stays release says where members stayed)."""


def _nice_up(value: float) -> float:
    """``value`` rounded UP to two significant figures (legend bounds a planner can read)."""
    if value <= 0:
        return 0.0
    magnitude = 10 ** (math.floor(math.log10(value)) - 1)
    return float(math.ceil(value / magnitude - 1e-9) * magnitude)


def _label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}".rstrip("0").rstrip(".")


def class_breaks(values: list[float], classes: int = len(RAMP)) -> list[float]:
    """Upper bounds of up to ``classes`` quantile classes, rounded up and strictly increasing (so every
    value falls in the class whose bound is the first at or above it)."""
    ordered = sorted(values)
    breaks: list[float] = []
    for index in range(1, classes + 1):
        position = min(len(ordered) - 1, math.ceil(index / classes * len(ordered)) - 1)
        bound = _nice_up(ordered[position])
        if not breaks or bound > breaks[-1]:
            breaks.append(bound)
    return breaks


def _colour(value: float, breaks: list[float]) -> str:
    for index, bound in enumerate(breaks):
        if value <= bound:
            return RAMP[round(index * (len(RAMP) - 1) / max(1, len(breaks) - 1))]
    return RAMP[-1]


def _unit(bucket: TimeBucket) -> str:
    return {TimeBucket.HOUR: "hour", TimeBucket.DAY: "day", TimeBucket.WEEK: "week"}[bucket]


def _period_text(period: Period) -> str:
    last = period.end - timedelta(days=1)
    if period.start == last:
        return f"{period.start:%-d %B %Y}"
    first = f"{period.start:%-d %B}" if period.start.year == last.year else f"{period.start:%-d %B %Y}"
    return f"{first} \u2013 {last:%-d %B %Y}"


def _header(info: PreviewInfo, height: int) -> list[str]:
    unit = _unit(info.time_bucket)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{MAP_MARGIN}" y="42" font-size="26" font-weight="bold" fill="#1d2433">'
        f'{escape(info.title)}</text>',
        f'<text x="{MAP_MARGIN}" y="70" font-size="16" fill="#3c4657">{escape(_period_text(info.period))}'
        f' \u00b7 {escape(info.what)}, on average, in any one {unit}</text>',
        f'<text x="{MAP_MARGIN}" y="92" font-size="12.5" fill="#6b7280">H3 resolution {info.resolution} '
        f'hexagons; every number is a noisy count of at least {info.k} members. Quieter hexagons are '
        f'merged into larger ones or left out.</text>',
    ]


def _scale_bar(x: float, y: float, km_per_px: float) -> list[str]:
    target_km = km_per_px * 140
    steps = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200)
    length_km = max((v for v in steps if v <= target_km), default=steps[0])
    px = length_km / km_per_px
    label = f"{length_km:g} km" if length_km >= 1 else f"{length_km * 1000:g} m"
    return [
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{px / 2:.1f}" height="6" fill="#1d2433"/>',
        f'<rect x="{x + px / 2:.1f}" y="{y:.1f}" width="{px / 2:.1f}" height="6" fill="#ffffff" '
        f'stroke="#1d2433" stroke-width="1"/>',
        f'<text x="{x:.1f}" y="{y - 6:.1f}" font-size="12" fill="#1d2433">0</text>',
        f'<text x="{x + px:.1f}" y="{y - 6:.1f}" font-size="12" fill="#1d2433" text-anchor="end">'
        f'{label}</text>',
    ]


def _north_arrow(x: float, y: float) -> list[str]:
    return [
        f'<path d="M{x:.1f},{y:.1f} l9,24 l-9,-6 l-9,6 z" fill="#1d2433"/>',
        f'<text x="{x:.1f}" y="{y + 40:.1f}" font-size="13" font-weight="bold" fill="#1d2433" '
        f'text-anchor="middle">N</text>',
    ]


def _legend(x: float, y: float, breaks: list[float], unit: str) -> list[str]:
    parts = [f'<text x="{x:.1f}" y="{y:.1f}" font-size="13" font-weight="bold" fill="#1d2433">'
             f'Members per km\u00b2 in an average {unit}</text>']
    box_w = 62
    lower = 0.0
    for index, bound in enumerate(breaks):
        colour = _colour(bound, breaks)
        bx = x + index * box_w
        parts.append(f'<rect x="{bx:.1f}" y="{y + 10:.1f}" width="{box_w}" height="16" fill="{colour}" '
                     f'stroke="#ffffff" stroke-width="1"/>')
        text = f"{_label(lower)}\u2013{_label(bound)}" if index < len(breaks) - 1 else f"{_label(lower)}+"
        parts.append(f'<text x="{bx + box_w / 2:.1f}" y="{y + 42:.1f}" font-size="11" fill="#3c4657" '
                     f'text-anchor="middle">{text}</text>')
        lower = bound
    return parts


def render_preview(rows: pl.DataFrame, info: PreviewInfo) -> str:
    """The SVG document for a release's published ``rows`` (bucket, cell, resolution, members)."""
    buckets = max(1, info.period.bucket_count(info.time_bucket))
    per_cell = (rows.group_by("cell", "resolution")
                .agg((pl.col("members").sum() / buckets).alias("value"))
                .sort(["resolution", "cell"]))
    areas = [h3_int.cell_area(cell, "km^2") for cell in per_cell.get_column("cell").to_list()]
    per_cell = per_cell.with_columns(pl.col("value") / pl.Series(areas, dtype=pl.Float64))
    if per_cell.height == 0:
        height = MAP_TOP + 260 + FOOTER
        parts = _header(info, height)
        parts.append(f'<text x="{WIDTH / 2}" y="{MAP_TOP + 130}" font-size="18" fill="#6b7280" '
                     f'text-anchor="middle">No hexagon reached k = {info.k} members in this period.</text>')
        parts.append(f'<text x="{MAP_MARGIN}" y="{height - 24}" font-size="11" fill="#6b7280">'
                     f'{escape(info.source)}</text></svg>')
        return "\n".join(parts) + "\n"

    cells = per_cell.get_column("cell").to_list()
    boundaries = {cell: h3_int.cell_to_boundary(cell) for cell in cells}
    lats = [lat for ring in boundaries.values() for lat, _ in ring]
    lngs = [lng for ring in boundaries.values() for _, lng in ring]
    min_lng, max_lat = min(lngs), max(lats)
    lat0 = (min(lats) + max_lat) / 2
    x_factor = math.cos(math.radians(lat0))
    span_x = max((max(lngs) - min_lng) * x_factor, 1e-6)
    span_y = max(max_lat - min(lats), 1e-6)
    map_width = WIDTH - 2 * MAP_MARGIN
    scale = min(map_width / span_x, 640 / span_y)
    map_height = span_y * scale
    height = int(MAP_TOP + map_height + 2 * MAP_MARGIN + FOOTER)
    x_offset = MAP_MARGIN + (map_width - span_x * scale) / 2
    y_top = MAP_TOP + MAP_MARGIN

    def project(lat: float, lng: float) -> str:
        return f"{x_offset + (lng - min_lng) * x_factor * scale:.1f},{y_top + (max_lat - lat) * scale:.1f}"

    values = per_cell.get_column("value").to_list()
    breaks = class_breaks(values)
    parts = _header(info, height)
    parts.append(f'<rect x="{MAP_MARGIN / 2}" y="{MAP_TOP + MAP_MARGIN / 2}" width="{WIDTH - MAP_MARGIN}" '
                 f'height="{map_height + MAP_MARGIN:.1f}" fill="#eef2f6" rx="6"/>')
    parts.append('<g stroke="#ffffff" stroke-width="0.25" stroke-linejoin="round">')
    for cell, resolution, value in per_cell.iter_rows():
        path = "M" + " L".join(project(lat, lng) for lat, lng in boundaries[cell]) + " Z"
        parts.append(f'<path d="{path}" fill="{_colour(value, breaks)}">'
                     f'<title>{format(cell, "x")} (res {resolution}): {value:.2f} per km\u00b2</title></path>')
    parts.append("</g>")
    km_per_px = _KM_PER_DEGREE / scale
    footer_y = y_top + map_height + MAP_MARGIN + 30
    parts += _legend(MAP_MARGIN, footer_y, breaks, _unit(info.time_bucket))
    parts += _scale_bar(WIDTH - MAP_MARGIN - 160, footer_y + 26, km_per_px)
    parts += _north_arrow(WIDTH - MAP_MARGIN - 14, MAP_TOP + MAP_MARGIN + 6)
    parts.append(f'<text x="{MAP_MARGIN}" y="{height - 18}" font-size="11" fill="#6b7280">'
                 f'{escape(info.source)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
