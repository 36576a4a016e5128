"""Release files: ``cells.csv``, ``cells.geojson`` and ``cells.parquet``, streamed to disk, with their
sizes and SHA-256.

Invariants: every file holds exactly the published rows, in the table's order; CSV columns are
``bucket_start,cell,resolution,members`` (RFC 3339 UTC with Z, H3 string); each GeoJSON Feature is
the cell's H3 boundary as a closed Polygon ring in [lng, lat] order with the same four properties; the
Parquet file has the same four columns, typed (``bucket_start`` a UTC timestamp in milliseconds, ``cell``
the H3 string, ``resolution`` and ``members`` integers). Output is byte-for-byte deterministic for a
given table (and library version).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h3.api.basic_int as h3_int
import polars as pl

CSV_NAME, GEOJSON_NAME, PREVIEW_NAME = "cells.csv", "cells.geojson", "preview.svg"
PARQUET_NAME, DATAPACKAGE_NAME = "cells.parquet", "datapackage.json"
MEDIA_TYPES = {CSV_NAME: "text/csv", GEOJSON_NAME: "application/geo+json", PREVIEW_NAME: "image/svg+xml",
               PARQUET_NAME: "application/vnd.apache.parquet", DATAPACKAGE_NAME: "application/json"}
DATA_FILES = (CSV_NAME, GEOJSON_NAME, PARQUET_NAME, DATAPACKAGE_NAME)
"""The files served under ``/files/{name}`` (the preview has its own route)."""
_COORDINATE_DIGITS = 7
_CHUNK = 1 << 20
_FEATURE_BATCH = 50_000


@dataclass(frozen=True)
class WrittenFile:
    name: str
    media_type: str
    bytes: int
    sha256: str

    def as_manifest_entry(self) -> dict[str, str | int]:
        return {"name": self.name, "media_type": self.media_type, "bytes": self.bytes, "sha256": self.sha256}


def describe_file(path: Path) -> WrittenFile:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return WrittenFile(name=path.name, media_type=MEDIA_TYPES[path.name], bytes=path.stat().st_size,
                       sha256=digest.hexdigest())


def _per_distinct_cell(cells: pl.Series, render: Callable[[int], str]) -> pl.Series:
    """``render`` applied once per distinct cell, mapped back onto every row (in row order)."""
    distinct = cells.unique()
    rendered = pl.Series([render(cell) for cell in distinct.to_list()], dtype=pl.String)
    return cells.replace_strict(distinct, rendered, return_dtype=pl.String)


def printable_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """The table as it is published: bucket_start (RFC 3339 Z), cell (H3 string), resolution, members."""
    return rows.select(
        pl.from_epoch(pl.col("bucket"), time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("bucket_start"),
        _per_distinct_cell(rows.get_column("cell"), lambda cell: format(cell, "x")).alias("cell"),
        pl.col("resolution"),
        pl.col("members"),
    )


def write_csv(path: Path, printable: pl.DataFrame) -> WrittenFile:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("bucket_start,cell,resolution,members\n")
        for start in range(0, printable.height, 100_000):
            handle.write(printable.slice(start, 100_000).write_csv(include_header=False, line_terminator="\n"))
    return describe_file(path)


def _ring(cell: int) -> str:
    """The closed boundary ring as GeoJSON coordinates text (what ``json.dumps`` writes, compact)."""
    points = [f"[{round(lng, _COORDINATE_DIGITS)!r},{round(lat, _COORDINATE_DIGITS)!r}]"
              for lat, lng in h3_int.cell_to_boundary(cell)]
    return "[[" + ",".join(points) + "," + points[0] + "]]"


def _features(printable: pl.DataFrame, cells: list[int]) -> pl.Series:
    """One GeoJSON Feature per row, built column-wise (each distinct cell's ring computed once)."""
    rings = _per_distinct_cell(pl.Series(cells, dtype=pl.Int64), _ring)
    return printable.with_columns(rings.alias("ring")).select(pl.concat_str([
        pl.lit('{"type":"Feature","geometry":{"type":"Polygon","coordinates":'), pl.col("ring"),
        pl.lit('},"properties":{"bucket_start":"'), pl.col("bucket_start"), pl.lit('","cell":"'), pl.col("cell"),
        pl.lit('","resolution":'), pl.col("resolution").cast(pl.String), pl.lit(',"members":'),
        pl.col("members").cast(pl.String), pl.lit("}}"),
    ]).alias("feature")).get_column("feature")


def write_geojson(path: Path, printable: pl.DataFrame, cells: list[int]) -> WrittenFile:
    features = _features(printable, cells)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write('{"type":"FeatureCollection","features":[')
        for start in range(0, features.len(), _FEATURE_BATCH):
            chunk = features.slice(start, _FEATURE_BATCH).to_list()
            handle.write(("," if start else "") + "\n" + ",\n".join(chunk))
        handle.write("\n]}\n")
    return describe_file(path)


def write_parquet(path: Path, printable: pl.DataFrame) -> WrittenFile:
    """The rows as Parquet (zstd), typed: ``bucket_start`` parsed back to a UTC timestamp (ms)."""
    typed = printable.select(
        pl.col("bucket_start").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="ms", time_zone="UTC"),
        pl.col("cell").cast(pl.String),
        pl.col("resolution").cast(pl.Int64),
        pl.col("members").cast(pl.Int64),
    )
    typed.write_parquet(path, compression="zstd", statistics=True)
    return describe_file(path)
