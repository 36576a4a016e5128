"""What a release reads from its family's sealed tables, through the tables domain's service: the family's
public parameters, whether the period is sealed, the published rows of a period and region, and each
member's input units.

Invariants:
- Only sealed buckets are read (a ``sealed_cell`` row exists only with its ``sealed_bucket`` row, written
  in one transaction), so two releases of one family read identical numbers for a cell-bucket, whatever
  their region, ``k`` or build time.
- Region = the rows whose cell centre (at the row's own resolution, generalised rows included) lies in
  the bounding box, edges included; ``k`` keeps rows with ``members >= k``.
- Rows come sorted (bucket, resolution descending, cell).
- Units are read from the families' input records (input, not publication): the same for a member
  whether or not any of their cells was published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlmodel import Session

from aggregation.periods import Period, TimeBucket, ms_datetime
from aggregation.spec import BoundingBox
from coop.kit.errors import Conflict, NotFound
from coop.kit.timeutil import rfc3339
from coop.tables import service as tables

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

    def privacy(self) -> dict[str, Any]:
        """The manifest's ``privacy`` object (the contract's six keys, nothing else)."""
        return {"mechanism": self.mechanism, "privacy_unit": PRIVACY_UNIT,
                "epsilon_per_day": self.epsilon_per_day, "delta": self.delta, "tau": self.tau,
                "contribution_bound": self.contribution_bound}


@dataclass(frozen=True)
class _LicenceFamily:
    family_id: str | None


def family_view(session: Session, family_id: str | None) -> FamilyView:
    """The family a licence reads; a licence without one cannot release (409)."""
    try:
        family = tables.family_for_licence(session, _LicenceFamily(family_id=family_id))
    except NotFound as missing:
        raise Conflict("the licence has no table family, so nothing can be released under it") from missing
    return FamilyView(family_id=family.id, kind=family.kind, time_bucket=TimeBucket(family.time_bucket),
                      resolution=family.resolution, mechanism=family.mechanism,
                      epsilon_per_day=family.epsilon_per_day, delta=family.delta, tau=family.tau,
                      contribution_bound=family.contribution_bound)


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return ms_datetime(period.start_ms), ms_datetime(period.end_ms)


def require_sealed(session: Session, *, family: FamilyView, period: Period) -> None:
    """Every bucket of ``period`` is sealed for the family, else :class:`PeriodNotSealed` (409)."""
    start, end = _bounds(period)
    row = tables.get_family(session, family.family_id)
    if tables.is_sealed(session, row, start=start, end=end):
        return
    through = tables.sealed_through(session, row)
    shown = rfc3339(through) if through else None
    raise PeriodNotSealed(
        f"the period {period.start.isoformat()}..{period.end.isoformat()} (end exclusive) is not sealed yet "
        f"for the licence's table family: sealed through {shown or 'nothing yet'}; a bucket is sealed once "
        "it ended at least the co-op's lateness margin ago", extensions={"sealed_through": shown})


def sealed_cells(session: Session, *, family_id: str, period: Period, region: BoundingBox | None,
                 min_members: int) -> pl.DataFrame:
    """Published rows (bucket as epoch ms, cell, resolution, members) of the period and region with
    ``members >= min_members``, sorted (bucket, resolution descending, cell)."""
    start, end = _bounds(period)
    bbox = None if region is None else (region.min_lng, region.min_lat, region.max_lng, region.max_lat)
    rows = tables.sealed_cells(session, family_id, start=start, end=end, bbox=bbox, min_members=min_members)
    return rows.select(pl.col("bucket_start").dt.epoch("ms").alias("bucket"), "cell", "resolution", "members")


def member_units(session: Session, *, family_id: str, period: Period) -> dict[str, int]:
    """Per member (account id): the buckets of ``period`` in which their data was input to the family."""
    units = tables.member_units(session, family_id, start=period.start, end=period.end)
    return {member_id: count for member_id, count in units.items() if count > 0}


def sealed_pairs(session: Session, *, family_id: str, period: Period, region: BoundingBox | None,
                 min_members: int) -> pl.DataFrame:
    """Published od rows (bucket as epoch ms, origin, destination, resolution, members) of the period
    with ``members >= min_members`` whose origin AND destination centres (at the row's resolution) both
    lie in the region, sorted (bucket, resolution descending, origin, destination)."""
    start, end = _bounds(period)
    bbox = None if region is None else (region.min_lng, region.min_lat, region.max_lng, region.max_lat)
    rows = tables.sealed_pairs(session, family_id, start=start, end=end, bbox=bbox, min_members=min_members)
    return rows.select(pl.col("bucket_start").dt.epoch("ms").alias("bucket"), "origin", "destination",
                       "resolution", "members")
