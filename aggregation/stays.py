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

import h3.api.basic_int as h3_int
import numpy as np
import numpy.typing as npt
import polars as pl

from aggregation.kanon import FINEST_RESOLUTION, parent_cell_expr
from aggregation.periods import DAY_MS, HOUR_MS, TimeBucket

DEFAULT_RADIUS_M = 200.0
DEFAULT_MIN_MINUTES = 15.0
STAY_LOOKBACK_MS = 12 * HOUR_MS
"""Pings read before a sealed range: a stay that began up to 12 h before it is seen whole."""
STAY_LOOKAHEAD_MS = 12 * HOUR_MS
"""Pings read after a sealed range: a stay overlapping its end is seen whole if it ends within 12 h,
and a trip departing inside the range is found if its destination stay is established within 12 h."""
EARTH_RADIUS_M = 6_371_007.180918475
"""The sphere H3 measures on (``h3.great_circle_distance``)."""
_WEEK_ORIGIN_MS = 4 * DAY_MS
"""1970-01-05, a Monday: week buckets are aligned to it."""
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


def bucket_start_expr(ts: pl.Expr, time_bucket: TimeBucket) -> pl.Expr:
    """The UTC-aligned start of the bucket holding ``ts`` (weeks start on Monday)."""
    length = time_bucket.length_ms
    origin = _WEEK_ORIGIN_MS if time_bucket is TimeBucket.WEEK else 0
    return (ts - origin) // length * length + origin


# --- positions -----------------------------------------------------------------------------------

def unit_vectors(lat_deg: FloatArray, lng_deg: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Points on the unit sphere: squared chords compare like great-circle distances."""
    lat, lng = np.radians(lat_deg), np.radians(lng_deg)
    return np.cos(lat) * np.cos(lng), np.cos(lat) * np.sin(lng), np.sin(lat)


def cell_centre_vectors(cells: pl.Series) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Unit vectors of the centres of ``cells`` (H3 integers), one H3 call per distinct cell."""
    distinct = cells.unique()
    centres = np.array([h3_int.cell_to_latlng(cell) for cell in distinct.to_list()],
                       dtype=np.float64).reshape(-1, 2)
    x, y, z = unit_vectors(centres[:, 0], centres[:, 1])
    slot = cells.replace_strict(distinct, pl.Series(np.arange(distinct.len(), dtype=np.int64)),
                                return_dtype=pl.Int64).to_numpy()
    return x[slot], y[slot], z[slot]


def chord_threshold(radius_m: float) -> float:
    """The squared unit-sphere chord of a great-circle distance of ``radius_m``."""
    return float((2.0 * math.sin(radius_m / (2.0 * EARTH_RADIUS_M))) ** 2)


# --- the scan --------------------------------------------------------------------------------------

class _Track:
    """All members' pings in (member, time, cell) order, as flat arrays."""

    def __init__(self, member_of: IntArray, ts: IntArray, x: FloatArray, y: FloatArray, z: FloatArray,
                 member_start: IntArray, member_end: IntArray, last_of: IntArray, threshold: float) -> None:
        self.member_of, self.ts, self.x, self.y, self.z = member_of, ts, x, y, z
        self.member_start, self.member_end, self.last_of = member_start, member_end, last_of
        self.threshold = threshold

    def far(self, anchor: IntArray, other: IntArray) -> BoolArray:
        """Whether ``other`` lies beyond the radius from ``anchor`` (elementwise, broadcasting)."""
        dx = self.x[anchor] - self.x[other]
        dy = self.y[anchor] - self.y[other]
        dz = self.z[anchor] - self.z[other]
        return np.asarray(dx * dx + dy * dy + dz * dz > self.threshold)


def _anchors(track: _Track, min_ms: int) -> tuple[BoolArray, IntArray]:
    """For every ping i: does a stay start there, and an index ``probe[i]`` such that every ping in
    ``[i, probe[i])`` lies within the radius of ping i (where extending a stay from i resumes).

    Consecutive pings at the same position form a segment and share one probe, which walks the
    following segments (vectorised: one pass per offset) until one lies beyond the radius, or one
    starts ``min_ms`` after the segment's last ping (then every ping of the segment starts a stay),
    or the member's pings end. The work is the number of segments within ``min_ms`` of each segment."""
    ts, n = track.ts, track.ts.size
    head = np.ones(n, dtype=np.bool_)
    head[1:] = ((track.member_of[1:] != track.member_of[:-1]) | (track.x[1:] != track.x[:-1])
                | (track.y[1:] != track.y[:-1]) | (track.z[1:] != track.z[:-1]))
    seg_start = np.flatnonzero(head).astype(np.int64)
    seg_end = np.append(seg_start[1:], n)
    member_end = track.last_of[seg_start] + 1
    last_segment = np.searchsorted(seg_start, member_end, side="left") - 1
    first_ts, last_ts = ts[seg_start], ts[seg_end - 1]
    # stop: the segment where the walk ended; how: 0 beyond the radius, 1 time reached, 2 no more pings
    stop = np.zeros(seg_start.size, dtype=np.int64)
    how = np.full(seg_start.size, 2, dtype=np.int8)
    pending = np.arange(seg_start.size, dtype=np.int64)
    offset = 1
    while pending.size:
        other = pending + offset
        ended = other > last_segment[pending]
        pending, other = pending[~ended], other[~ended]
        far = track.far(seg_start[pending], seg_start[other])
        timed = ~far & (first_ts[other] >= last_ts[pending] + min_ms)
        stop[pending[far]], how[pending[far]] = other[far], 0
        stop[pending[timed]], how[pending[timed]] = other[timed], 1
        pending = pending[~far & ~timed]
        offset += 1
    segment = np.cumsum(head) - 1
    ping_stop, ping_how = stop[segment], how[segment]
    run_end = np.where(ping_how == 0, seg_start[ping_stop], track.last_of + 1)
    is_anchor = (ping_how == 1) | (ts[run_end - 1] - ts >= min_ms)
    probe = np.where(ping_how == 1, seg_end[ping_stop], run_end)
    return is_anchor, probe


def _extend(track: _Track, anchor: IntArray, probe: IntArray, limit: IntArray) -> IntArray:
    """For each stay anchored at ``anchor``: the first index in ``[probe, limit)`` beyond the radius,
    else ``limit``. Gathers windows that double in width, so each stay costs O(its pings)."""
    end = limit.copy()
    todo = np.arange(anchor.size, dtype=np.int64)
    probe = probe.copy()
    width = 8
    last_index = track.ts.size - 1
    while todo.size:
        a, q, lim = anchor[todo], probe[todo], limit[todo]
        columns = q[:, None] + np.arange(width, dtype=np.int64)[None, :]
        inside = columns < lim[:, None]
        beyond = inside & track.far(a[:, None], np.minimum(columns, last_index))
        found = beyond.any(axis=1)
        end[todo[found]] = q[found] + beyond[found].argmax(axis=1)
        unresolved = ~found & (q + width < lim)
        probe[todo[unresolved]] = q[unresolved] + width
        todo = todo[unresolved]
        width = min(width * 2, max(16, _GATHER_BUDGET // max(1, todo.size)))
    return end


def _scan(track: _Track, min_ms: int) -> tuple[IntArray, IntArray]:
    """The greedy scan for every member at once: (first index, end index exclusive) of each stay."""
    n = track.ts.size
    is_anchor, probe = _anchors(track, min_ms)
    candidates = np.where(is_anchor, np.arange(n, dtype=np.int64), n)
    next_anchor = np.append(np.minimum.accumulate(candidates[::-1])[::-1], n)
    # From any position the scan walks forward one ping at a time until it meets an anchor, so the
    # next stay is next_anchor[position]; the scan then resumes at that stay's end.
    position, limit = track.member_start, track.member_end
    starts: list[IntArray] = []
    ends: list[IntArray] = []
    while position.size:
        anchor = next_anchor[position]
        live = anchor < limit
        anchor, limit = anchor[live], limit[live]
        if not anchor.size:
            break
        end = _extend(track, anchor, probe[anchor], limit)
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


def _stays(frame: pl.DataFrame, x: FloatArray, y: FloatArray, z: FloatArray, *, radius_m: float,
           min_minutes: float) -> pl.DataFrame:
    if radius_m < 0 or min_minutes < 0:
        raise ValueError("radius_m and min_minutes must not be negative")
    if frame.height == 0:
        return pl.DataFrame(schema=STAY_SCHEMA)
    member = frame.get_column("member_no").to_numpy()
    n = member.size
    boundaries = np.flatnonzero(member[1:] != member[:-1]) + 1
    member_start = np.concatenate([[0], boundaries]).astype(np.int64)
    member_end = np.concatenate([boundaries, [n]]).astype(np.int64)
    last_of = np.repeat(member_end - 1, member_end - member_start)
    track = _Track(member, frame.get_column("ts_ms").to_numpy(), x, y, z, member_start, member_end, last_of,
                   chord_threshold(radius_m))
    first, end = _scan(track, math.ceil(min_minutes * 60_000))
    if not first.size:
        return pl.DataFrame(schema=STAY_SCHEMA)
    lengths = end - first
    stay_of_ping = np.repeat(np.arange(first.size, dtype=np.int64), lengths)
    before = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    ping_index = np.repeat(first - before, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
    cells = frame.get_column("cell").to_numpy()[ping_index]
    main_cell = (pl.DataFrame({"stay": stay_of_ping, "cell": cells})
                 .group_by("stay", "cell").len()
                 .sort(["stay", "len", "cell"], descending=[False, True, False])
                 .unique("stay", keep="first", maintain_order=True)
                 .get_column("cell"))
    ts = track.ts
    return pl.DataFrame({
        "member_no": member[first], "start_ms": ts[first], "end_ms": ts[end - 1], "cell": main_cell,
        "pings": end - first,
    }, schema=STAY_SCHEMA)


def detect_stays(pings: pl.DataFrame, *, radius_m: float = DEFAULT_RADIUS_M,
                 min_minutes: float = DEFAULT_MIN_MINUTES) -> pl.DataFrame:
    """``pings`` (member_no, ts_ms, cell at resolution 10; any order) -> the stays, one row each:
    member_no, start_ms, end_ms, cell (resolution 10), pings; ordered by member and start."""
    frame = _ordered(pings)
    x, y, z = cell_centre_vectors(frame.get_column("cell"))
    return _stays(frame, x, y, z, radius_m=radius_m, min_minutes=min_minutes)


def detect_stays_at_points(pings: pl.DataFrame, *, radius_m: float = DEFAULT_RADIUS_M,
                           min_minutes: float = DEFAULT_MIN_MINUTES) -> pl.DataFrame:
    """As :func:`detect_stays`, but measuring distances between the pings' own ``lat``/``lng``
    columns (the alternative the sealer does not use; ``bench/stays.py`` compares the two)."""
    frame = pings.select(*(pl.col(name).cast(dtype) for name, dtype in PING_SCHEMA.items()),
                         pl.col("lat").cast(pl.Float64), pl.col("lng").cast(pl.Float64))
    frame = frame.sort(list(PING_SCHEMA), maintain_order=True)
    x, y, z = unit_vectors(frame.get_column("lat").to_numpy(), frame.get_column("lng").to_numpy())
    return _stays(frame.drop("lat", "lng"), x, y, z, radius_m=radius_m, min_minutes=min_minutes)


# --- tables' inputs --------------------------------------------------------------------------------

def _at_resolution(column: str, resolution: int) -> pl.Expr:
    if not 0 <= resolution <= FINEST_RESOLUTION:
        raise ValueError(f"resolution {resolution} is outside 0..{FINEST_RESOLUTION}")
    expr = pl.col(column)
    return expr if resolution == FINEST_RESOLUTION else parent_cell_expr(expr, resolution)


def stay_contributions(stays: pl.DataFrame, *, time_bucket: TimeBucket, resolution: int,
                       start_ms: int, end_ms: int) -> pl.DataFrame:
    """Stays -> bucket, member_no, cell (at ``resolution``), weight, for the buckets inside
    ``[start_ms, end_ms)``. A stay counts in every bucket its ``[start_ms, end_ms]`` overlaps; its
    weight there is the milliseconds of overlap (inclusive, so at least 1), summed over the member's
    stays in that cell: bounding keeps the cells where the member stayed longest."""
    length = time_bucket.length_ms
    first = bucket_start_expr(pl.col("start_ms"), time_bucket)
    last = bucket_start_expr(pl.col("end_ms"), time_bucket)
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


def trip_contributions(trips: pl.DataFrame, *, time_bucket: TimeBucket, start_ms: int,
                       end_ms: int) -> pl.DataFrame:
    """Trips -> bucket (of departure), member_no, origin, destination, weight (trips made), for the
    departures inside ``[start_ms, end_ms)``."""
    return (trips.lazy()
            .filter(pl.col("depart_ms") >= start_ms, pl.col("depart_ms") < end_ms)
            .group_by(bucket_start_expr(pl.col("depart_ms"), time_bucket).alias("bucket"), "member_no",
                      "origin", "destination")
            .agg(pl.len().alias("weight"))
            .select(pl.col(name).cast(dtype) for name, dtype in PAIR_CONTRIBUTION_SCHEMA.items())
            .sort("bucket", "member_no", "origin", "destination")
            .collect())
