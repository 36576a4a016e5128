"""Stays and origin-destination trips from pings (pure: Polars and NumPy; no database, no web framework).

A **stay** is a maximal run of one member's consecutive pings (by time) that all lie within
``radius_m`` of the run's first ping and span at least ``min_minutes`` (last ping minus first). The scan
is the classic greedy one: from the current ping, take the longest run within the radius; if it spans
long enough it is a stay and the scan resumes after it, otherwise the scan moves on by one ping. A
stay's cell is its most-pinged resolution-10 cell (ties to the smaller id); it lasts from its first
ping to its last (``start_ms``..``end_ms``, both inclusive) and belongs to every bucket it overlaps.
A **trip** is two consecutive stays of one member whose cells differ at the family's resolution; it
departs when the first stay ends (its last ping) and arrives when the second begins.

Positions are the centres of the pings' resolution-10 cells, not the decrypted coordinates: the
sealer then needs no member key and never holds a coordinate, and quantisation moves a point by at
most one cell circumradius (~76 m, half that on average) against a 200 m radius and phone accuracy
of 15-60 m indoors (``bench/stays.py`` measures both the cost and the agreement).

Invariants: the output depends only on the set of input rows, never their order (pings are ordered
by member, time, then cell); stays of one member never overlap; every ping belongs to at most one
stay; distances are great-circle (chord on the sphere H3 uses), ``<= radius_m`` counts as within.

Sealing a bucket ``[start, end)`` must detect on the pings of ``read_window(start, end)``: the
look-back and look-ahead are long enough that an overnight stay is whole in both days' windows, and
that a trip departing late in a bucket still finds its destination stay (see ``read_window``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import h3.api.basic_int as h3_int
import numpy as np
import numpy.typing as npt
import polars as pl

from aggregation.kanon import FINEST_RESOLUTION, parent_cell_expr
from aggregation.periods import HOUR_MS

DEFAULT_RADIUS_M = 200.0
DEFAULT_MIN_MINUTES = 15.0
STAY_LOOKBACK_MS = 12 * HOUR_MS
"""Pings read before a sealed range: a stay that began up to 12 h before it is seen whole."""
STAY_LOOKAHEAD_MS = 12 * HOUR_MS
"""Pings read after a sealed range: a stay overlapping its end is seen whole if it ends within 12 h,
and a trip departing inside the range is found if its destination stay is established within 12 h.
Both margins stay within a day: ``aggregation.dp.exposure`` charges a member-day to the buckets of
the day before and after (daily), 72 hours (hourly, sealed a day at a time), 2 weeks (weekly)."""
EARTH_RADIUS_M = 6_371_007.180918475
"""The sphere H3 measures on (``h3.great_circle_distance``)."""
_GATHER_BUDGET = 4_000_000
"""Most distance evaluations held at once while extending stays (bounds memory)."""

PING_SCHEMA = {"member_no": pl.Int64, "ts_ms": pl.Int64, "cell": pl.Int64}
STAY_SCHEMA = {"member_no": pl.Int64, "start_ms": pl.Int64, "end_ms": pl.Int64, "cell": pl.Int64,
               "pings": pl.Int64}
TRIP_SCHEMA = {"member_no": pl.Int64, "depart_ms": pl.Int64, "arrive_ms": pl.Int64, "origin": pl.Int64,
               "destination": pl.Int64}
CONTRIBUTION_SCHEMA = {"bucket": pl.Int64, "member_no": pl.Int64, "cell": pl.Int64, "weight": pl.Int64}
PAIR_CONTRIBUTION_SCHEMA = {"bucket": pl.Int64, "member_no": pl.Int64, "origin": pl.Int64,
                            "destination": pl.Int64, "weight": pl.Int64}

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def read_window(start_ms: int, end_ms: int) -> tuple[int, int]:
    """The pings ``[from, to)`` to read when sealing the buckets in ``[start_ms, end_ms)``."""
    return start_ms - STAY_LOOKBACK_MS, end_ms + STAY_LOOKAHEAD_MS


def bucket_start_expr(ts: pl.Expr, *, bucket_ms: int, origin_ms: int) -> pl.Expr:
    """The start of the bucket holding ``ts``, buckets being ``bucket_ms`` long from ``origin_ms``
    (any bucket start: the sealer passes its chunk's first bucket, so weeks start on Monday)."""
    return origin_ms + (ts - origin_ms) // bucket_ms * bucket_ms


# --- positions -----------------------------------------------------------------------------------

def unit_vectors(lat_deg: FloatArray, lng_deg: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Points on the unit sphere: squared chords compare like great-circle distances."""
    lat, lng = np.radians(lat_deg), np.radians(lng_deg)
    return np.cos(lat) * np.cos(lng), np.cos(lat) * np.sin(lng), np.sin(lat)


def cell_centre_vectors(cells: pl.Series) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Unit vectors of the centres of ``cells`` (H3 integers), one H3 call per distinct cell."""
    distinct = cells.unique().sort().to_numpy()
    centres = np.array([h3_int.cell_to_latlng(int(cell)) for cell in distinct],
                       dtype=np.float64).reshape(-1, 2)
    x, y, z = unit_vectors(centres[:, 0], centres[:, 1])
    slot = np.searchsorted(distinct, cells.to_numpy())
    return x[slot], y[slot], z[slot]


def chord_threshold(radius_m: float) -> float:
    """The squared unit-sphere chord of a great-circle distance of ``radius_m``."""
    return float((2.0 * math.sin(radius_m / (2.0 * EARTH_RADIUS_M))) ** 2)


# --- the scan --------------------------------------------------------------------------------------

class _Segments:
    """Runs of one member's consecutive pings at one position, over all members in (member, time)
    order: a stay always starts at a segment's first ping and ends at a segment's last ping (a ping
    at distance 0 from its predecessor cannot be where a run breaks, and a scan that moves on from a
    segment's first ping finds no stay starting later in that segment, whose runs are shorter)."""

    def __init__(self, member: IntArray, ts: IntArray, key: IntArray, cell: IntArray,
                 vectors: Callable[[IntArray], tuple[FloatArray, FloatArray, FloatArray]],
                 threshold: float) -> None:
        n = member.size
        head = np.ones(n, dtype=np.bool_)
        head[1:] = (member[1:] != member[:-1]) | (key[1:] != key[:-1])
        starts = np.flatnonzero(head).astype(np.int64)
        ends = np.append(starts[1:], n)
        self.member, self.cell = member[starts], cell[starts]
        self.first_ts, self.last_ts, self.count = ts[starts], ts[ends - 1], ends - starts
        self.x, self.y, self.z = vectors(starts)
        size = starts.size
        boundaries = np.flatnonzero(self.member[1:] != self.member[:-1]) + 1
        self.member_start = np.concatenate([[0], boundaries]).astype(np.int64)
        self.member_end = np.append(boundaries, size).astype(np.int64)
        self.last = np.repeat(self.member_end - 1, self.member_end - self.member_start)
        self.threshold = threshold

    def far(self, anchor: IntArray, other: IntArray) -> BoolArray:
        """Whether ``other`` lies beyond the radius from ``anchor`` (elementwise, broadcasting)."""
        dx = self.x[anchor] - self.x[other]
        dy = self.y[anchor] - self.y[other]
        dz = self.z[anchor] - self.z[other]
        return np.asarray(dx * dx + dy * dy + dz * dz > self.threshold)


def _anchors(segs: _Segments, min_ms: int) -> tuple[BoolArray, IntArray]:
    """For every segment: does a stay start at its first ping, and for those a segment ``probe``
    such that every segment before it (from this one) lies within the radius.

    Vectorised, one pass per offset: each segment walks the following ones until one lies beyond
    the radius (no stay), one ends ``min_ms`` or more after this one begins (a stay), or the
    member's pings end (no stay). The work is the segments within ``min_ms`` of each segment."""
    index = np.arange(segs.first_ts.size, dtype=np.int64)
    anchor = segs.last_ts - segs.first_ts >= min_ms
    probe = np.where(anchor, index + 1, 0)
    pending = index[~anchor]
    offset = 1
    while pending.size:
        other = pending + offset
        live = other <= segs.last[pending]
        pending, other = pending[live], other[live]
        near = ~segs.far(pending, other)
        timed = near & (segs.last_ts[other] - segs.first_ts[pending] >= min_ms)
        anchor[pending[timed]] = True
        probe[pending[timed]] = other[timed] + 1
        pending = pending[near & ~timed]
        offset += 1
    return anchor, probe


def _extend(segs: _Segments, anchor: IntArray, probe: IntArray, limit: IntArray) -> IntArray:
    """For each stay anchored at ``anchor``: the first segment in ``[probe, limit)`` beyond the
    radius, else ``limit``. Gathers windows that double in width, so a stay costs O(its segments)."""
    end = limit.copy()
    todo = np.arange(anchor.size, dtype=np.int64)
    probe = probe.copy()
    width = 8
    last_index = segs.first_ts.size - 1
    while todo.size:
        a, q, lim = anchor[todo], probe[todo], limit[todo]
        columns = q[:, None] + np.arange(width, dtype=np.int64)[None, :]
        beyond = (columns < lim[:, None]) & segs.far(a[:, None], np.minimum(columns, last_index))
        found = beyond.any(axis=1)
        end[todo[found]] = q[found] + beyond[found].argmax(axis=1)
        unresolved = ~found & (q + width < lim)
        probe[todo[unresolved]] = q[unresolved] + width
        todo = todo[unresolved]
        width = min(width * 2, max(16, _GATHER_BUDGET // max(1, todo.size)))
    return end


def _scan(segs: _Segments, min_ms: int) -> tuple[IntArray, IntArray]:
    """The greedy scan for every member at once: (first segment, end segment exclusive) per stay."""
    size = segs.first_ts.size
    is_anchor, probe = _anchors(segs, min_ms)
    candidates = np.where(is_anchor, np.arange(size, dtype=np.int64), size)
    next_anchor = np.append(np.minimum.accumulate(candidates[::-1])[::-1], size)
    # From any position the scan moves on one ping at a time until it meets an anchor, so the next
    # stay starts at next_anchor[position]; the scan then resumes where that stay ends. Members
    # advance in lockstep: one pass per stay of the member with the most stays.
    position, limit = segs.member_start, segs.member_end
    starts: list[IntArray] = []
    ends: list[IntArray] = []
    while position.size:
        anchor = next_anchor[position]
        live = anchor < limit
        anchor, limit = anchor[live], limit[live]
        if not anchor.size:
            break
        end = _extend(segs, anchor, probe[anchor], limit)
        starts.append(anchor)
        ends.append(end)
        position = end
    if not starts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    first, end = np.concatenate(starts), np.concatenate(ends)
    order = np.argsort(first, kind="stable")
    return first[order], end[order]


def _ordered(pings: pl.DataFrame) -> pl.DataFrame:
    """``pings`` in (member, time, cell) order; already-ordered input (as the sealer reads it) is
    only checked, not sorted."""
    frame = pings.select(pl.col(name).cast(dtype) for name, dtype in PING_SCHEMA.items())
    if frame.height < 2:
        return frame
    m, t, c = (frame.get_column(name).to_numpy() for name in PING_SCHEMA)
    same_member, same_time = m[1:] == m[:-1], t[1:] == t[:-1]
    ordered = (m[1:] > m[:-1]) | (same_member & ((t[1:] > t[:-1]) | (same_time & (c[1:] >= c[:-1]))))
    return frame if bool(ordered.all()) else frame.sort(list(PING_SCHEMA))


def _check(radius_m: float, min_minutes: float) -> None:
    if radius_m < 0 or min_minutes < 0:
        raise ValueError("radius_m and min_minutes must not be negative")


def _stays(segs: _Segments, *, min_minutes: float) -> pl.DataFrame:
    first, end = _scan(segs, math.ceil(min_minutes * 60_000))
    if not first.size:
        return pl.DataFrame(schema=STAY_SCHEMA)
    lengths = end - first
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    inside = np.repeat(first - before, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
    main_cell = (pl.DataFrame({"stay": np.repeat(np.arange(first.size, dtype=np.int64), lengths),
                               "cell": segs.cell[inside], "pings": segs.count[inside]})
                 .group_by("stay", "cell").agg(pl.col("pings").sum())
                 .sort(["stay", "pings", "cell"], descending=[False, True, False])
                 .unique("stay", keep="first", maintain_order=True)
                 .get_column("cell"))
    counted = np.concatenate([[0], np.cumsum(segs.count)]).astype(np.int64)
    return pl.DataFrame({
        "member_no": segs.member[first], "start_ms": segs.first_ts[first], "end_ms": segs.last_ts[end - 1],
        "cell": main_cell, "pings": counted[end] - counted[first],
    }, schema=STAY_SCHEMA)


def detect_stays(pings: pl.DataFrame, *, radius_m: float = DEFAULT_RADIUS_M,
                 min_minutes: float = DEFAULT_MIN_MINUTES) -> pl.DataFrame:
    """``pings`` (member_no, ts_ms, cell at resolution 10; any order) -> the stays, one row each:
    member_no, start_ms, end_ms, cell (resolution 10), pings; ordered by member and start."""
    _check(radius_m, min_minutes)
    frame = _ordered(pings)
    if frame.height == 0:
        return pl.DataFrame(schema=STAY_SCHEMA)
    member, ts, cell = (frame.get_column(name).to_numpy() for name in PING_SCHEMA)

    def centres(heads: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        return cell_centre_vectors(pl.Series(cell[heads], dtype=pl.Int64))

    return _stays(_Segments(member, ts, cell, cell, centres, chord_threshold(radius_m)),
                  min_minutes=min_minutes)


def detect_stays_at_points(pings: pl.DataFrame, *, radius_m: float = DEFAULT_RADIUS_M,
                           min_minutes: float = DEFAULT_MIN_MINUTES) -> pl.DataFrame:
    """As :func:`detect_stays`, but measuring distances between the pings' own ``lat``/``lng``
    columns (the alternative the sealer does not use; ``bench/stays.py`` compares the two)."""
    _check(radius_m, min_minutes)
    frame = (pings.select(*(pl.col(name).cast(dtype) for name, dtype in PING_SCHEMA.items()),
                          pl.col("lat").cast(pl.Float64), pl.col("lng").cast(pl.Float64))
             .sort(list(PING_SCHEMA), maintain_order=True))
    if frame.height == 0:
        return pl.DataFrame(schema=STAY_SCHEMA)
    member, ts, cell = (frame.get_column(name).to_numpy() for name in PING_SCHEMA)
    x, y, z = unit_vectors(frame.get_column("lat").to_numpy(), frame.get_column("lng").to_numpy())

    def points(heads: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        return x[heads], y[heads], z[heads]

    each_alone = np.arange(member.size, dtype=np.int64)
    return _stays(_Segments(member, ts, each_alone, cell, points, chord_threshold(radius_m)),
                  min_minutes=min_minutes)


# --- tables' inputs --------------------------------------------------------------------------------

def _at_resolution(column: str, resolution: int) -> pl.Expr:
    if not 0 <= resolution <= FINEST_RESOLUTION:
        raise ValueError(f"resolution {resolution} is outside 0..{FINEST_RESOLUTION}")
    expr = pl.col(column)
    return expr if resolution == FINEST_RESOLUTION else parent_cell_expr(expr, resolution)


def stay_contributions(stays: pl.DataFrame, *, bucket_ms: int, resolution: int, start_ms: int,
                       end_ms: int) -> pl.DataFrame:
    """Stays -> bucket (its start, epoch ms), member_no, cell (at ``resolution``), weight, for the
    buckets of ``bucket_ms`` inside ``[start_ms, end_ms)`` (``start_ms`` a bucket start). A stay counts in every bucket its ``[start_ms, end_ms]`` overlaps; its
    weight there is the milliseconds of overlap (inclusive, so at least 1), summed over the member's
    stays in that cell: bounding keeps the cells where the member stayed longest."""
    length = bucket_ms
    first = bucket_start_expr(pl.col("start_ms"), bucket_ms=length, origin_ms=start_ms)
    last = bucket_start_expr(pl.col("end_ms"), bucket_ms=length, origin_ms=start_ms)
    return (stays.lazy()
            .filter(pl.col("end_ms") >= start_ms, pl.col("start_ms") < end_ms)
            .select("member_no", "start_ms", "end_ms", _at_resolution("cell", resolution).alias("cell"),
                    pl.int_ranges(first, last + 1, length, dtype=pl.Int64).alias("bucket"))
            .explode("bucket")
            .filter(pl.col("bucket") >= start_ms, pl.col("bucket") < end_ms)
            .with_columns((pl.min_horizontal(pl.col("end_ms"), pl.col("bucket") + length - 1)
                           - pl.max_horizontal(pl.col("start_ms"), pl.col("bucket")) + 1).alias("weight"))
            .group_by("bucket", "member_no", "cell")
            .agg(pl.col("weight").sum())
            .select(pl.col(name).cast(dtype) for name, dtype in CONTRIBUTION_SCHEMA.items())
            .sort("bucket", "member_no", "cell")
            .collect())


def detect_trips(stays: pl.DataFrame, *, resolution: int) -> pl.DataFrame:
    """Consecutive stays of one member whose cells differ at ``resolution`` -> member_no, depart_ms
    (the first stay's end), arrive_ms (the second's start), origin, destination (at ``resolution``)."""
    return (stays.lazy()
            .sort("member_no", "start_ms")
            .select("member_no", pl.col("end_ms").alias("depart_ms"),
                    pl.col("start_ms").shift(-1).over("member_no").alias("arrive_ms"),
                    _at_resolution("cell", resolution).alias("origin"))
            .with_columns(pl.col("origin").shift(-1).over("member_no").alias("destination"))
            .filter(pl.col("destination").is_not_null(), pl.col("origin") != pl.col("destination"))
            .select(pl.col(name).cast(dtype) for name, dtype in TRIP_SCHEMA.items())
            .collect())


def trip_contributions(trips: pl.DataFrame, *, bucket_ms: int, start_ms: int, end_ms: int) -> pl.DataFrame:
    """Trips -> bucket (of departure, its start), member_no, origin, destination, weight (trips
    made), for the departures inside ``[start_ms, end_ms)`` (``start_ms`` a bucket start)."""
    return (trips.lazy()
            .filter(pl.col("depart_ms") >= start_ms, pl.col("depart_ms") < end_ms)
            .group_by(bucket_start_expr(pl.col("depart_ms"), bucket_ms=bucket_ms, origin_ms=start_ms).alias("bucket"),
                      "member_no",
                      "origin", "destination")
            .agg(pl.len().alias("weight"))
            .select(pl.col(name).cast(dtype) for name, dtype in PAIR_CONTRIBUTION_SCHEMA.items())
            .sort("bucket", "member_no", "origin", "destination")
            .collect())
