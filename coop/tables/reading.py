"""Reading sealed tables: how far a family is sealed, its rows for a period and region, members' input.

Invariants: only buckets with a ``sealed_bucket`` row exist for readers (their rows were committed with
it); ``sealed_through`` is the end of the unbroken run of sealed buckets from the family's first
bucket, so everything before it is sealed; rows come back sorted (bucket_start, resolution descending,
cell or origin, destination) as releases need them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import h3.api.basic_int as h3_int
import polars as pl
import sqlalchemy as sa
from sqlmodel import Session, col, select

from aggregation.periods import TimeBucket
from coop.kit.timeutil import as_utc
from coop.tables.buckets import bucket_length, first_bucket
from coop.tables.models import SealedBucket, SealedContribution, SealedPair, TableFamily

BBox = tuple[float, float, float, float]
"""``(min_lng, min_lat, max_lng, max_lat)``, edges included."""

CELL_FRAME: dict[str, pl.DataType | type[pl.DataType]] = {"bucket_start": pl.Datetime("us", "UTC"), "cell": pl.Int64, "resolution": pl.Int64,
              "members": pl.Int64}
PAIR_FRAME: dict[str, pl.DataType | type[pl.DataType]] = {"bucket_start": pl.Datetime("us", "UTC"), "origin": pl.Int64, "destination": pl.Int64,
              "resolution": pl.Int64, "members": pl.Int64}


def sealed_through(session: Session, family: TableFamily) -> datetime | None:
    """The exclusive end of the last bucket of the unbroken sealed run from the family's first bucket."""
    first = first_bucket(family.time_bucket, family.seal_from)
    length = bucket_length(family.time_bucket)
    count, last_end = session.execute(
        sa.select(sa.func.count(), sa.func.max(col(SealedBucket.bucket_end)))
        .where(col(SealedBucket.family_id) == family.id, col(SealedBucket.bucket_start) >= first)).one()
    if not count:
        return None
    last: datetime = as_utc(last_end)
    if (last - first) // length == count:
        return last
    through = first  # a gap (a sealer is still filling an earlier run in): walk the run
    starts = session.exec(select(SealedBucket.bucket_start).where(SealedBucket.family_id == family.id,
                                                                  col(SealedBucket.bucket_start) >= first)
                          .order_by(col(SealedBucket.bucket_start)))
    for start in starts:
        if start.astimezone(UTC) != through:
            break
        through += length
    return through if through > first else None


def is_sealed(session: Session, family: TableFamily, *, start: datetime, end: datetime) -> bool:
    """Every bucket of ``[start, end)`` (bucket-aligned) is sealed."""
    expected = (end - start) // bucket_length(family.time_bucket)
    found = session.execute(sa.select(sa.func.count()).where(
        col(SealedBucket.family_id) == family.id, col(SealedBucket.bucket_start) >= start,
        col(SealedBucket.bucket_start) < end)).scalar_one()
    return bool(found == expected)


def _centres_inside(cells: list[int], bbox: BBox) -> list[int]:
    min_lng, min_lat, max_lng, max_lat = bbox
    inside = []
    for cell in cells:
        lat, lng = h3_int.cell_to_latlng(cell)
        if min_lat <= lat <= max_lat and min_lng <= lng <= max_lng:
            inside.append(cell)
    return inside


def _frame(session: Session, query: sa.Executable, schema: dict[str, pl.DataType | type[pl.DataType]]) -> pl.DataFrame:
    rows = session.execute(query).all()
    columns: list[list[object]] = [list(values) for values in zip(*rows, strict=True)] if rows \
        else [[] for _ in schema]
    return pl.DataFrame([pl.Series(name, values, dtype=dtype)
                         for (name, dtype), values in zip(schema.items(), columns, strict=True)])


_CELLS_SQL = ("SELECT {bucket}, cell, resolution, members FROM sealed_cell WHERE family_id = {p} "
              "AND bucket_start >= {p} AND bucket_start < {p} AND members >= {p}")
_PG_BUCKET_US = "CAST(EXTRACT(EPOCH FROM bucket_start) * 1000000 AS BIGINT)"
_SQLITE_STORED = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime on SQLite (UTC, naive text)
_SQLITE_PARSE = "%Y-%m-%d %H:%M:%S%.f"  # the same, as Polars parses it


def _fetch(session: Session, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    """Rows of one plain statement on the session's own connection (its transaction), through the
    DB-API cursor: no per-row type processing, which is most of the cost at a hundred thousand rows."""
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def sealed_cells(session: Session, family_id: str, *, start: datetime, end: datetime, bbox: BBox | None = None,
                 min_members: int = 0) -> pl.DataFrame:
    """bucket_start, cell, resolution, members: the family's sealed cells of ``[start, end)``, whose
    centre lies in ``bbox`` (any resolution), with ``members >= min_members``.

    One plain query, read column-wise (a four-week release is ~10^5 rows): PostgreSQL hands back the
    bucket as epoch microseconds, SQLite as its stored text, parsed by Polars in one vectorised step."""
    schema: dict[str, pl.DataType | type[pl.DataType]] = {"bucket_start": pl.Int64, "cell": pl.Int64,
                                                          "resolution": pl.Int64, "members": pl.Int64}
    if session.get_bind().dialect.name == "sqlite":
        bounds = [as_utc(moment).strftime(_SQLITE_STORED) for moment in (start, end)]
        found = _fetch(session, _CELLS_SQL.format(bucket="bucket_start", p="?"), (family_id, *bounds, min_members))
        frame = pl.DataFrame(found, schema={**schema, "bucket_start": pl.String}, orient="row").with_columns(
            pl.col("bucket_start").str.to_datetime(_SQLITE_PARSE, time_unit="us", time_zone="UTC"))
    else:
        found = _fetch(session, _CELLS_SQL.format(bucket=_PG_BUCKET_US, p="%s"),
                       (family_id, as_utc(start), as_utc(end), min_members))
        frame = pl.DataFrame(found, schema=schema, orient="row").with_columns(
            pl.col("bucket_start").cast(pl.Datetime("us", "UTC")))
    if bbox is not None and frame.height:
        inside = _centres_inside(frame.get_column("cell").unique().to_list(), bbox)
        frame = frame.filter(pl.col("cell").is_in(pl.Series(inside, dtype=pl.Int64).implode()))
    return frame.sort(["bucket_start", "resolution", "cell"], descending=[False, True, False])


def sealed_pairs(session: Session, family_id: str, *, start: datetime, end: datetime, bbox: BBox | None = None,
                 min_members: int = 0) -> pl.DataFrame:
    """bucket_start, origin, destination, resolution, members; with ``bbox``, pairs whose two ends both
    have their centre inside it."""
    query = (sa.select(col(SealedPair.bucket_start), col(SealedPair.origin), col(SealedPair.destination),
                       col(SealedPair.resolution), col(SealedPair.members))
             .where(col(SealedPair.family_id) == family_id, col(SealedPair.bucket_start) >= start,
                    col(SealedPair.bucket_start) < end, col(SealedPair.members) >= min_members)
             .order_by(col(SealedPair.bucket_start), col(SealedPair.resolution).desc(), col(SealedPair.origin),
                       col(SealedPair.destination)))
    frame = _frame(session, query, PAIR_FRAME)
    if bbox is not None and frame.height:
        ends = pl.concat([frame.get_column("origin"), frame.get_column("destination")]).unique().to_list()
        inside = pl.Series(_centres_inside(ends, bbox), dtype=pl.Int64).implode()
        frame = frame.filter(pl.col("origin").is_in(inside), pl.col("destination").is_in(inside))
    return frame


def member_units(session: Session, family_id: str, *, start: date, end: date) -> dict[str, int]:
    """member_id -> buckets of the family in ``[start, end)`` that took the member's data as input."""
    query = (sa.select(col(SealedContribution.member_id), sa.func.sum(col(SealedContribution.buckets)))
             .where(col(SealedContribution.family_id) == family_id, col(SealedContribution.day) >= start,
                    col(SealedContribution.day) < end)
             .group_by(col(SealedContribution.member_id)))
    return {str(member_id): int(total) for member_id, total in session.execute(query)}


def privacy_loss(session: Session, member_id: str, *, start_day: date, end_day: date) -> dict[date, float]:
    """Per day of ``[start_day, end_day)``: the sum of ``epsilon_per_day`` over the families whose tables
    for that day took the member's data (a week table charges every day of its week)."""
    query = (sa.select(col(SealedContribution.day), col(TableFamily.time_bucket), col(TableFamily.epsilon_per_day),
                       col(TableFamily.id))
             .join(TableFamily, col(TableFamily.id) == col(SealedContribution.family_id))
             .where(col(SealedContribution.member_id) == member_id,
                    col(SealedContribution.day) >= start_day - timedelta(days=6),
                    col(SealedContribution.day) < end_day))
    charged: dict[date, dict[str, float]] = defaultdict(dict)
    for day, time_bucket, epsilon, family_id in session.execute(query):
        span = 7 if TimeBucket(time_bucket) is TimeBucket.WEEK else 1
        for offset in range(span):
            charged[day + timedelta(days=offset)][family_id] = float(epsilon)
    days = (end_day - start_day).days
    return {start_day + timedelta(days=n): sum(charged.get(start_day + timedelta(days=n), {}).values())
            for n in range(days)}
