"""Release files of an origin-destination (``od``) release: ``od.csv``, ``od.geojson``, ``od.parquet``.

Input rows: bucket (epoch ms), origin, destination (H3 integers), resolution, members, in the sealed
table's order (bucket, resolution descending, origin, destination).

Invariants: every file holds exactly those rows in that order; CSV columns are
``bucket_start,origin,destination,resolution,members`` (RFC 3339 UTC with Z, H3 strings); each GeoJSON
Feature is a LineString from the origin cell's centre to the destination cell's centre ([lng, lat])
with the same five properties; the Parquet file has the same five columns, typed (``bucket_start`` a
UTC timestamp in milliseconds, cells H3 strings, integers). Output is byte-for-byte deterministic for a
given table (and library version). Pure: Polars frames in, files and their hashes out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import h3.api.basic_int as h3_int
import polars as pl

from aggregation.writers import WrittenFile

OD_CSV_NAME, OD_GEOJSON_NAME, OD_PARQUET_NAME = "od.csv", "od.geojson", "od.parquet"
OD_MEDIA_TYPES = {OD_CSV_NAME: "text/csv", OD_GEOJSON_NAME: "application/geo+json",
                  OD_PARQUET_NAME: "application/vnd.apache.parquet"}
OD_FILES = (OD_CSV_NAME, OD_GEOJSON_NAME, OD_PARQUET_NAME)
OD_COLUMNS = ("bucket_start", "origin", "destination", "resolution", "members")
OD_ROW_SCHEMA = {"bucket": pl.Int64, "origin": pl.Int64, "destination": pl.Int64, "resolution": pl.Int64,
                 "members": pl.Int64}
_COORDINATE_DIGITS = 7
_CHUNK = 1 << 20
_CSV_BATCH = 100_000


def describe(path: Path, media_type: str) -> WrittenFile:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return WrittenFile(name=path.name, media_type=media_type, bytes=path.stat().st_size,
                       sha256=digest.hexdigest())


def _hex(column: pl.Series, name: str) -> pl.Series:
    return pl.Series(name, [format(cell, "x") for cell in column.to_list()], dtype=pl.String)


def printable_pairs(rows: pl.DataFrame) -> pl.DataFrame:
    """The table as published: bucket_start (RFC 3339 Z), origin, destination (H3 strings),
    resolution, members."""
    return rows.select(
        pl.from_epoch(pl.col("bucket"), time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("bucket_start"),
        _hex(rows.get_column("origin"), "origin"),
        _hex(rows.get_column("destination"), "destination"),
        pl.col("resolution").cast(pl.Int64),
        pl.col("members").cast(pl.Int64),
    )


def write_od_csv(path: Path, printable: pl.DataFrame) -> WrittenFile:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(OD_COLUMNS) + "\n")
        for start in range(0, printable.height, _CSV_BATCH):
            handle.write(printable.slice(start, _CSV_BATCH).write_csv(include_header=False, line_terminator="\n"))
    return describe(path, OD_MEDIA_TYPES[OD_CSV_NAME])


def _centre(cell: int) -> list[float]:
    lat, lng = h3_int.cell_to_latlng(cell)
    return [round(lng, _COORDINATE_DIGITS), round(lat, _COORDINATE_DIGITS)]


def _features(printable: pl.DataFrame, rows: pl.DataFrame) -> Iterator[str]:
    centres: dict[int, list[float]] = {}

    def centre(cell: int) -> list[float]:
        found = centres.get(cell)
        if found is None:
            found = centres[cell] = _centre(cell)
        return found

    pairs = zip(rows.get_column("origin").to_list(), rows.get_column("destination").to_list(), strict=True)
    for (bucket_start, origin, destination, resolution, members), (o, d) in zip(printable.iter_rows(), pairs,
                                                                                 strict=True):
        line = json.dumps([centre(o), centre(d)], separators=(",", ":"))
        yield ('{"type":"Feature","geometry":{"type":"LineString","coordinates":' + line +
               '},"properties":{"bucket_start":"' + bucket_start + '","origin":"' + origin +
               '","destination":"' + destination + f'","resolution":{resolution},"members":{members}}}}}')


def write_od_geojson(path: Path, printable: pl.DataFrame, rows: pl.DataFrame) -> WrittenFile:
    """One LineString Feature per row; ``rows`` are the integer rows ``printable`` was made from."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write('{"type":"FeatureCollection","features":[')
        for index, feature in enumerate(_features(printable, rows)):
            handle.write(("," if index else "") + "\n" + feature)
        handle.write("\n]}\n")
    return describe(path, OD_MEDIA_TYPES[OD_GEOJSON_NAME])


def write_od_parquet(path: Path, printable: pl.DataFrame) -> WrittenFile:
    """The rows as Parquet (zstd), typed: ``bucket_start`` parsed back to a UTC timestamp (ms)."""
    typed = printable.select(
        pl.col("bucket_start").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="ms", time_zone="UTC"),
        pl.col("origin").cast(pl.String),
        pl.col("destination").cast(pl.String),
        pl.col("resolution").cast(pl.Int64),
        pl.col("members").cast(pl.Int64),
    )
    typed.write_parquet(path, compression="zstd", statistics=True)
    return describe(path, OD_MEDIA_TYPES[OD_PARQUET_NAME])


def write_od_files(folder: Path, rows: pl.DataFrame) -> list[WrittenFile]:
    """``od.csv``, ``od.geojson`` and ``od.parquet`` for the sealed ``rows``, in that order."""
    rows = rows.select(pl.col(name).cast(dtype) for name, dtype in OD_ROW_SCHEMA.items())
    printable = printable_pairs(rows)
    return [write_od_csv(folder / OD_CSV_NAME, printable),
            write_od_geojson(folder / OD_GEOJSON_NAME, printable, rows),
            write_od_parquet(folder / OD_PARQUET_NAME, printable)]
