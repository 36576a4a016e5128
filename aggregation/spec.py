"""A licence's dataset spec as the builder reads it, and the region filter (pure: no database).

Invariants: the resolution is within coarsest..finest; k is the licence's own ``k`` column (never
below the k floor, enforced when the licence is issued); a ping is in the region when the centre of
its resolution-10 cell lies inside the bounding box (edges included).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import h3.api.basic_int as h3_int
import polars as pl

from aggregation.kanon import COARSEST_RESOLUTION, FINEST_RESOLUTION, parent_cell_expr, sum_counts
from aggregation.periods import Period, TimeBucket


@dataclass(frozen=True)
class BoundingBox:
    min_lng: float
    min_lat: float
    max_lng: float
    max_lat: float

    def contains(self, *, lat: float, lng: float) -> bool:
        return self.min_lat <= lat <= self.max_lat and self.min_lng <= lng <= self.max_lng


@dataclass(frozen=True)
class DatasetSpec:
    resolution: int
    time_bucket: TimeBucket
    period: Period
    region: BoundingBox | None
    k: int

    @classmethod
    def from_licence(cls, dataset: dict[str, Any], *, k: int) -> DatasetSpec:
        """The licence's ``dataset`` JSON, validated (a malformed one raises ``ValueError``)."""
        resolution = int(dataset["resolution"])
        if not COARSEST_RESOLUTION <= resolution <= FINEST_RESOLUTION:
            raise ValueError(f"dataset resolution {resolution} is outside "
                             f"{COARSEST_RESOLUTION}..{FINEST_RESOLUTION}")
        region = dataset.get("region")
        box = None
        if region is not None:
            min_lng, min_lat, max_lng, max_lat = (float(v) for v in region["bbox"])
            box = BoundingBox(min_lng=min_lng, min_lat=min_lat, max_lng=max_lng, max_lat=max_lat)
        period = Period(start=date.fromisoformat(str(dataset["start"])),
                        end=date.fromisoformat(str(dataset["end"])))
        return cls(resolution=resolution, time_bucket=TimeBucket(dataset["time_bucket"]), period=period,
                   region=box, k=k)


def restrict_to_region(counts: pl.DataFrame, *, region: BoundingBox, resolution: int) -> pl.DataFrame:
    """Keep the lines whose resolution-10 ``cell`` centre is inside ``region``; then map cells to
    ``resolution`` and merge the lines that meet there."""
    distinct = counts.get_column("cell").unique().to_list()
    inside = [cell for cell in distinct
              if region.contains(lat=(centre := h3_int.cell_to_latlng(cell))[0], lng=centre[1])]
    kept = counts.filter(pl.col("cell").is_in(pl.Series(inside, dtype=pl.Int64)))
    if resolution == FINEST_RESOLUTION:
        return kept
    return sum_counts(kept.with_columns(parent_cell_expr(pl.col("cell"), resolution).alias("cell")))
