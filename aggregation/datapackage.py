"""``datapackage.json``: a Frictionless Data Package (v2) describing a release's other files.

Invariants (pure: no database, no web framework):
- ``resources`` lists every other file of the release (data files and the preview), each with its
  ``path`` (the file name, relative to the package), ``mediatype``, ``bytes`` and ``hash``
  (``"sha256:<hex>"``); tabular files (CSV, Parquet) carry a Table Schema with typed fields, the
  GeoJSON and SVG files are plain data resources.
- The package names its licence (id, terms version, licensee organisation, validity) and carries the
  family's public ``privacy`` parameters; it holds no count of anything but what the tables publish.
- The document is byte-for-byte deterministic for the same inputs (sorted keys, fixed separators).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregation.writers import WrittenFile, describe_file

PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
_FORMATS = {"text/csv": "csv", "application/vnd.apache.parquet": "parquet",
            "application/geo+json": "geojson", "image/svg+xml": "svg", "application/json": "json"}


@dataclass(frozen=True)
class LicenceTerms:
    """The licence a release is issued under, as the package states it."""

    licence_id: str
    terms_version: str
    organisation: str
    purpose: str
    valid_from: str
    valid_until: str


@dataclass(frozen=True)
class PackageInfo:
    """What the package says about the release besides its files."""

    release_id: str
    title: str
    created: str
    """RFC 3339 UTC: when the release was built."""
    publisher: str
    family_id: str
    kind: str
    time_bucket: str
    resolution: int
    start: str
    end: str
    """Exclusive, as in the release's period."""
    k: int
    licence: LicenceTerms
    privacy: Mapping[str, Any]
    """The family's public DP parameters (mechanism, privacy_unit, epsilon_per_day, delta, tau, ...)."""

    @property
    def least_published(self) -> int:
        """Every published ``members`` is at least this: the licence's ``k`` and the family's ``tau``."""
        return max(self.k, int(self.privacy.get("tau", 0)))


def _members_field(info: PackageInfo) -> dict[str, Any]:
    return {"name": "members", "type": "integer",
            "description": "Distinct members, differentially private: the family's sealed count with "
                           "noise added, rounded to an integer; never below tau nor the licence's k.",
            "constraints": {"required": True, "minimum": info.least_published}}


def _bucket_field(info: PackageInfo) -> dict[str, Any]:
    return {"name": "bucket_start", "type": "datetime",
            "description": f"Start of the UTC {info.time_bucket} bucket (RFC 3339, Z).",
            "constraints": {"required": True}}


def _cell_field(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "type": "string", "description": description,
            "constraints": {"required": True, "pattern": "^[0-9a-f]{15}$"}}


def _resolution_field(info: PackageInfo) -> dict[str, Any]:
    return {"name": "resolution", "type": "integer",
            "description": "H3 resolution of the row's cell(s): the licence's, or coarser where finer "
                           "cells were too thin and their members were counted in the parent.",
            "constraints": {"required": True, "maximum": info.resolution}}


def cells_schema(info: PackageInfo) -> dict[str, Any]:
    """Table Schema of ``cells.csv`` / ``cells.parquet``."""
    return {"fields": [_bucket_field(info), _cell_field("cell", "H3 cell index (hexadecimal)."),
                       _resolution_field(info), _members_field(info)],
            "primaryKey": ["bucket_start", "cell"]}


def od_schema(info: PackageInfo) -> dict[str, Any]:
    """Table Schema of ``od.csv`` / ``od.parquet`` (origin-destination pairs by departure bucket)."""
    return {"fields": [_bucket_field(info),
                       _cell_field("origin", "H3 cell of the stay the trip left (hexadecimal)."),
                       _cell_field("destination", "H3 cell of the next stay (hexadecimal)."),
                       _resolution_field(info), _members_field(info)],
            "primaryKey": ["bucket_start", "origin", "destination"]}


_DESCRIPTIONS = {
    "cells.csv": "Published rows: one per (bucket, cell), sorted by bucket_start, resolution "
                 "descending, cell.",
    "cells.parquet": "The same rows as cells.csv, typed (bucket_start a UTC timestamp).",
    "cells.geojson": "The same rows as cells.csv, one Polygon Feature (the H3 cell boundary, "
                     "[lng, lat]) per row with the same properties.",
    "od.csv": "Published rows: one per (departure bucket, origin, destination), sorted by "
              "bucket_start, resolution descending, origin, destination.",
    "od.parquet": "The same rows as od.csv, typed (bucket_start a UTC timestamp).",
    "od.geojson": "The same rows as od.csv, one LineString Feature (origin centre to destination "
                  "centre, [lng, lat]) per row with the same properties.",
    "preview.svg": "A map of the release (not data: for a first look).",
}
_UNIT_OF_COUNT = {"od": "origin-destination pair of H3 cells (trips departing in the bucket)",
                  "stays": "H3 cell (members who stayed there)"}
_SCHEMAS = {"cells.csv": cells_schema, "cells.parquet": cells_schema,
            "od.csv": od_schema, "od.parquet": od_schema}


def resource(file: WrittenFile, info: PackageInfo) -> dict[str, Any]:
    """One file's Data Resource descriptor (a tabular one with its Table Schema)."""
    name = file.name.replace(".", "-")
    described: dict[str, Any] = {
        "name": name, "path": file.name,
        "format": _FORMATS.get(file.media_type, file.name.rsplit(".", 1)[-1]),
        "mediatype": file.media_type, "bytes": file.bytes, "hash": f"sha256:{file.sha256}",
        "description": _DESCRIPTIONS.get(file.name, file.name),
    }
    if file.media_type in ("text/csv", "application/geo+json", "image/svg+xml", "application/json"):
        described["encoding"] = "utf-8"
    schema = _SCHEMAS.get(file.name)
    if schema is not None:
        described["type"] = "table"
        described["schema"] = schema(info)
    if file.media_type == "text/csv":
        described["dialect"] = {"delimiter": ",", "lineTerminator": "\n", "header": True}
    return described


def datapackage(info: PackageInfo, files: Sequence[WrittenFile]) -> dict[str, Any]:
    """The package descriptor for ``files`` (every release file except the package itself)."""
    licence = info.licence
    return {
        "$schema": PROFILE,
        "name": f"coop-release-{info.release_id}",
        "id": f"urn:uuid:{info.release_id}",
        "title": info.title,
        "description": (f"{info.kind} counts per {info.time_bucket} and {_UNIT_OF_COUNT.get(info.kind, 'H3 cell')} (resolution "
                        f"{info.resolution}, coarser where needed) from {info.start} to {info.end} "
                        f"(exclusive), selected from the co-op's sealed, differentially private tables "
                        f"(family {info.family_id}) with members >= {info.k}."),
        "created": info.created,
        "contributors": [{"title": info.publisher, "roles": ["publisher"]}],
        "licenses": [{"name": "LicenseRef-coop-data-licence",
                      "title": f"Data licence {licence.licence_id} (terms {licence.terms_version}) "
                               f"issued to {licence.organisation}"}],
        "licence": {"licence_id": licence.licence_id, "terms_version": licence.terms_version,
                    "licensee_organisation": licence.organisation, "purpose": licence.purpose,
                    "valid_from": licence.valid_from, "valid_until": licence.valid_until},
        "release": {"release_id": info.release_id, "family_id": info.family_id, "kind": info.kind,
                    "time_bucket": info.time_bucket, "resolution": info.resolution, "start": info.start,
                    "end": info.end, "k": info.k},
        "privacy": dict(info.privacy),
        "resources": [resource(file, info) for file in files],
    }


def write_datapackage(path: Path, info: PackageInfo, files: Sequence[WrittenFile]) -> WrittenFile:
    """Write the descriptor (sorted keys, two-space indent, trailing newline) and describe it."""
    text = json.dumps(datapackage(info, files), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return describe_file(path)
