"""What a release reads from its family's sealed tables: the family's public parameters, which buckets
are sealed, the published rows of a period and region, and each member's input units.

Invariants:
- Only sealed buckets are read (a ``sealed_cell`` row exists only with its ``sealed_bucket`` row, written
  in one transaction), so two releases of one family read identical numbers for a cell-bucket, whatever
  their region, ``k`` or build time.
- Region = the rows whose cell centre (at the row's own resolution, generalised rows included) lies in
  the bounding box, edges included; ``k`` keeps rows with ``members >= k``.
- Rows come sorted (bucket, resolution descending, cell).
- Units are read from ``sealed_contribution`` (input, not publication): the same for a member whether or
  not any of their cells was published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import h3.api.basic_int as h3_int
import polars as pl
import sqlalchemy as sa
from sqlmodel import Session, col

from aggregation.periods import Period, TimeBucket, ms_datetime
from aggregation.spec import BoundingBox
from coop.kit.errors import Conflict
from coop.kit.timeutil import as_utc, rfc3339
from coop.tables.models import SealedBucket, SealedContribution, TableFamily

PRIVACY_UNIT = "member-day"


class PeriodNotSealed(Conflict):
    """The release's period is not (yet) sealed for its family; ``sealed_through`` says how far it is."""

    title, type_slug = "Period not sealed", "period-not-sealed"


@dataclass(frozen=True)
class FamilyView:
    """A family as a release sees it: identity, shape and the public privacy parameters."""

    family_id: str
    kind: str
    time_bucket: TimeBucket
    resolution: int
    mechanism: str
    epsilon_per_day: float
    delta: float
    tau: int
    contribution_bound: int
    sigma: float

    def privacy(self) -> dict[str, Any]:
        """The manifest's ``privacy`` object (the contract's six keys, nothing else)."""
        return {"mechanism": self.mechanism, "privacy_unit": PRIVACY_UNIT,
                "epsilon_per_day": self.epsilon_per_day, "delta": self.delta, "tau": self.tau,
                "contribution_bound": self.contribution_bound}


def family_view(session: Session, family_id: str | None) -> FamilyView:
    family = session.get(TableFamily, family_id) if family_id else None
    if family is None:
        raise Conflict("the licence has no table family, so nothing can be released under it")
    return FamilyView(family_id=family.id, kind=family.kind, time_bucket=TimeBucket(family.time_bucket),
                      resolution=family.resolution, mechanism=family.mechanism,
                      epsilon_per_day=family.epsilon_per_day, delta=family.delta, tau=family.tau,
                      contribution_bound=family.contribution_bound, sigma=family.sigma)


def sealed_through(session: Session, family_id: str) -> datetime | None:
    """The exclusive end of the family's last sealed bucket (None before the first)."""
    found = session.execute(sa.select(sa.func.max(col(SealedBucket.bucket_end)))
                            .where(col(SealedBucket.family_id) == family_id)).scalar_one_or_none()
    return None if found is None else as_utc(found if isinstance(found, datetime)
                                             else datetime.fromisoformat(str(found)))


def require_sealed(session: Session, *, family: FamilyView, period: Period) -> None:
    """Every bucket of ``period`` is sealed for the family, else :class:`PeriodNotSealed` (409)."""
    start, end = _bounds(period)
    sealed = session.execute(sa.select(sa.func.count()).select_from(SealedBucket).where(
        col(SealedBucket.family_id) == family.family_id, col(SealedBucket.bucket_start) >= start,
        col(SealedBucket.bucket_start) < end)).scalar_one()
    if int(sealed) == period.bucket_count(family.time_bucket):
        return
    through = sealed_through(session, family.family_id)
    shown = rfc3339(through) if through else None
    raise PeriodNotSealed(
        f"the period {period.start.isoformat()}..{period.end.isoformat()} (end exclusive) is not sealed yet "
        f"for the licence's table family: sealed through {shown or 'nothing yet'}; a bucket is sealed once "
        "it ended at least the co-op's lateness margin ago", extensions={"sealed_through": shown})


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return ms_datetime(period.start_ms), ms_datetime(period.end_ms)


def in_region(cells: pl.Series, region: BoundingBox) -> pl.Series:
    """The distinct ``cells`` (any resolution) whose centre lies inside ``region``."""
    inside = [cell for cell in cells.unique().to_list()
              if region.contains(lat=(centre := h3_int.cell_to_latlng(cell))[0], lng=centre[1])]
    return pl.Series("cell", inside, dtype=pl.Int64)


_CELLS_SQL = ("SELECT {bucket}, cell, resolution, members FROM sealed_cell WHERE family_id = {p} "
              "AND bucket_start >= {p} AND bucket_start < {p} AND members >= {p}")
_PG_BUCKET_MS = "CAST(EXTRACT(EPOCH FROM bucket_start) * 1000 AS BIGINT)"
_SQLITE_STORED = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime on SQLite (UTC, naive text)
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S%.f"  # the same, as Polars parses it
_ROW_SCHEMA = {"bucket": pl.Int64, "cell": pl.Int64, "resolution": pl.Int64, "members": pl.Int64}


def _fetch(session: Session, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows of one plain statement on the session's own connection (its transaction), through the
    DB-API cursor: no per-row processing, which is most of the cost at a hundred thousand rows."""
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def sealed_cells(session: Session, *, family_id: str, period: Period, region: BoundingBox | None,
                 min_members: int) -> pl.DataFrame:
    """Published rows (bucket ms, cell, resolution, members) of the period and region, ``>= min_members``.

    One plain query: PostgreSQL hands back the bucket as epoch ms, SQLite as its stored text (parsed by
    Polars in one vectorised step)."""
    start, end = _bounds(period)
    if session.get_bind().dialect.name == "sqlite":
        bounds = [moment.strftime(_SQLITE_STORED) for moment in (start, end)]
        found = _fetch(session, _CELLS_SQL.format(bucket="bucket_start", p="?"),
                       (family_id, *bounds, min_members))
        rows = pl.DataFrame(found, schema={**_ROW_SCHEMA, "bucket": pl.String}, orient="row").with_columns(
            pl.col("bucket").str.to_datetime(_SQLITE_FORMAT, time_unit="ms", time_zone="UTC").dt.epoch("ms"))
    else:
        found = _fetch(session, _CELLS_SQL.format(bucket=_PG_BUCKET_MS, p="%s"),
                       (family_id, start, end, min_members))
        rows = pl.DataFrame(found, schema=_ROW_SCHEMA, orient="row")
    if region is not None and rows.height:
        rows = rows.filter(pl.col("cell").is_in(in_region(rows.get_column("cell"), region)))
    return rows.sort(["bucket", "resolution", "cell"], descending=[False, True, False])


def member_units(session: Session, *, family_id: str, period: Period) -> dict[str, int]:
    """Per member (account id): the buckets of ``period`` in which their data was input to the family."""
    rows = session.execute(
        sa.select(col(SealedContribution.member_id), sa.func.sum(col(SealedContribution.buckets)))
        .where(col(SealedContribution.family_id) == family_id, col(SealedContribution.day) >= period.start,
               col(SealedContribution.day) < period.end)
        .group_by(col(SealedContribution.member_id))).all()
    return {str(member_id): int(units) for member_id, units in rows if units and int(units) > 0}
