"""What a release of each kind holds: which sealed rows it reads, its data files and its preview.

- ``presence`` and ``stays``: the family's sealed cells, whose centre lies in the licence's bbox, as
  ``cells.csv`` / ``cells.geojson`` / ``cells.parquet``; the preview is a hexagon map.
- ``od``: the family's sealed pairs as ``od.csv`` / ``od.geojson`` / ``od.parquet``; the preview is a flow
  map. A pair is in the licence's region when BOTH its origin's and its destination's cell centres (at
  the row's own resolution, generalised pairs included) lie in the bbox, edges included: a release never
  holds a flow with an end outside the region the board licensed.

Invariants: every release also has ``datapackage.json`` and ``preview.svg``; rows come sorted (bucket,
resolution descending, cell or origin, destination) and all have ``members >= k``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from aggregation.flow_preview import render_flow_preview
from aggregation.od_files import (
    OD_CSV_NAME,
    OD_FILES,
    OD_GEOJSON_NAME,
    OD_MEDIA_TYPES,
    OD_PARQUET_NAME,
    write_od_files,
)
from aggregation.preview import PreviewInfo, render_preview
from aggregation.writers import (
    CSV_NAME,
    DATAPACKAGE_NAME,
    GEOJSON_NAME,
    MEDIA_TYPES,
    PARQUET_NAME,
    WrittenFile,
    printable_rows,
    write_csv,
    write_geojson,
    write_parquet,
)

CELL_FILES = (CSV_NAME, GEOJSON_NAME, PARQUET_NAME)
FILE_MEDIA_TYPES = {**MEDIA_TYPES, **OD_MEDIA_TYPES}
"""Every file a release of any kind may have (the preview included), with its media type."""
SERVED_FILES = (*CELL_FILES, OD_CSV_NAME, OD_GEOJSON_NAME, OD_PARQUET_NAME, DATAPACKAGE_NAME)
"""The files served under ``/files/{name}`` for some kind (a release has only its kind's)."""


def write_cell_files(folder: Path, rows: pl.DataFrame) -> list[WrittenFile]:
    """``cells.csv``, ``cells.geojson`` and ``cells.parquet`` for sealed cell rows."""
    printable = printable_rows(rows)
    cells = rows.get_column("cell").to_list()
    return [write_csv(folder / CSV_NAME, printable), write_geojson(folder / GEOJSON_NAME, printable, cells),
            write_parquet(folder / PARQUET_NAME, printable)]


@dataclass(frozen=True)
class ReleaseKind:
    """How a release of one table kind is laid out."""

    pairs: bool
    """True when the family's rows are origin-destination pairs (else cells)."""
    data_files: tuple[str, ...]
    write_data: Callable[[Path, pl.DataFrame], list[WrittenFile]]
    render_preview: Callable[[pl.DataFrame, PreviewInfo], str]


_CELLS = ReleaseKind(pairs=False, data_files=CELL_FILES, write_data=write_cell_files,
                     render_preview=render_preview)
_PAIRS = ReleaseKind(pairs=True, data_files=OD_FILES, write_data=write_od_files,
                     render_preview=render_flow_preview)
RELEASE_KINDS: dict[str, ReleaseKind] = {"presence": _CELLS, "stays": _CELLS, "od": _PAIRS}


def release_kind(kind: str) -> ReleaseKind:
    """The layout of a release of ``kind`` (a family of an unknown kind cannot be released)."""
    try:
        return RELEASE_KINDS[kind]
    except KeyError:
        raise ValueError(f"no release layout for table kind {kind!r}") from None
