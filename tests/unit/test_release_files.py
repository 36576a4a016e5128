"""The release files written by the pure writers: Parquet equals CSV, and ``datapackage.json`` describes
every other file exactly (a Frictionless validator agrees, and catches a tampered byte)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import h3
import polars as pl
import pytest
from frictionless import Package

from aggregation.datapackage import LicenceTerms, PackageInfo, write_datapackage
from aggregation.writers import (
    CSV_NAME,
    DATAPACKAGE_NAME,
    GEOJSON_NAME,
    PARQUET_NAME,
    PREVIEW_NAME,
    WrittenFile,
    describe_file,
    printable_rows,
    write_csv,
    write_geojson,
    write_parquet,
)

DAY_MS = 86_400_000
MONDAY_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
X9 = h3.latlng_to_cell(53.4084, -2.9916, 9)
PRIVACY = {"mechanism": "discrete-gaussian-zcdp (OpenDP 0.16)", "privacy_unit": "member-day",
           "epsilon_per_day": 0.5, "delta": 1e-7, "tau": 14, "contribution_bound": 3}
INFO = PackageInfo(release_id="0b5a3c8e-6c1f-4c0e-9a55-2f1e4b7d9a10", title="Transport planning",
                   created="2026-12-01T18:00:00Z", publisher="The co-op", family_id="family-1",
                   kind="presence", time_bucket="day", resolution=9, start="2026-11-02", end="2026-11-09",
                   k=10, licence=LicenceTerms(licence_id="licence-1", terms_version="2026-11",
                                              organisation="Merseytravel", purpose="transport-planning",
                                              valid_from="2026-11-01T00:00:00Z",
                                              valid_until="2027-11-01T00:00:00Z"),
                   privacy=PRIVACY)


def _rows() -> pl.DataFrame:
    children = sorted(h3.str_to_int(c) for c in h3.cell_to_children(h3.cell_to_parent(X9, 8)))[:3]
    parent = h3.str_to_int(h3.cell_to_parent(X9, 7))
    return pl.DataFrame({
        "bucket": [MONDAY_MS] * 3 + [MONDAY_MS + DAY_MS],
        "cell": [*children, parent],
        "resolution": [9, 9, 9, 7],
        "members": [14, 15, 40, 22],
    })


def _write_release(directory: Path) -> list[WrittenFile]:
    rows = _rows()
    printable = printable_rows(rows)
    files = [write_csv(directory / CSV_NAME, printable),
             write_geojson(directory / GEOJSON_NAME, printable, rows.get_column("cell").to_list()),
             write_parquet(directory / PARQUET_NAME, printable)]
    (directory / PREVIEW_NAME).write_text("<svg xmlns='http://www.w3.org/2000/svg'/>\n", encoding="utf-8")
    files.append(describe_file(directory / PREVIEW_NAME))
    return [*files, write_datapackage(directory / DATAPACKAGE_NAME, INFO, files)]


def test_the_parquet_file_holds_the_csv_rows_typed(tmp_path: Path) -> None:
    _write_release(tmp_path)
    with (tmp_path / CSV_NAME).open(newline="") as handle:
        from_csv = list(csv.DictReader(handle))
    table = pl.read_parquet(tmp_path / PARQUET_NAME)
    assert table.columns == ["bucket_start", "cell", "resolution", "members"]
    assert table.schema["bucket_start"] == pl.Datetime("ms", "UTC")
    assert [(row["bucket_start"].strftime("%Y-%m-%dT%H:%M:%SZ"), row["cell"], str(row["resolution"]),
             str(row["members"])) for row in table.iter_rows(named=True)] == [
        (row["bucket_start"], row["cell"], row["resolution"], row["members"]) for row in from_csv]


def test_the_datapackage_lists_every_other_file_with_its_size_and_hash(tmp_path: Path) -> None:
    written = _write_release(tmp_path)
    package = json.loads((tmp_path / DATAPACKAGE_NAME).read_text())
    resources = {item["path"]: item for item in package["resources"]}
    assert list(resources) == [CSV_NAME, GEOJSON_NAME, PARQUET_NAME, PREVIEW_NAME]
    for name, item in resources.items():
        data = (tmp_path / name).read_bytes()
        assert item["bytes"] == len(data)
        assert item["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert {f.name: f.media_type for f in written}[DATAPACKAGE_NAME] == "application/json"
    assert resources[PARQUET_NAME]["mediatype"] == "application/vnd.apache.parquet"
    assert resources[CSV_NAME]["schema"] == resources[PARQUET_NAME]["schema"]
    fields = {field["name"]: field for field in resources[CSV_NAME]["schema"]["fields"]}
    assert list(fields) == ["bucket_start", "cell", "resolution", "members"]
    assert fields["members"]["constraints"]["minimum"] == 14  # max(k 10, tau 14)
    assert package["privacy"] == PRIVACY
    assert package["licence"]["licence_id"] == "licence-1"
    assert package["licence"]["licensee_organisation"] == "Merseytravel"
    assert "schema" not in resources[GEOJSON_NAME] and "schema" not in resources[PREVIEW_NAME]


def test_a_frictionless_validator_accepts_the_package_and_catches_a_tampered_byte(tmp_path: Path) -> None:
    _write_release(tmp_path)
    package = Package(str(tmp_path / DATAPACKAGE_NAME))
    for name in ("cells-csv", "cells-geojson", "preview-svg"):
        report = package.get_resource(name).validate()
        assert report.valid, report.flatten(["type", "note"])
    text = (tmp_path / CSV_NAME).read_text().replace(",40\n", ",41\n")
    (tmp_path / CSV_NAME).write_text(text)
    report = Package(str(tmp_path / DATAPACKAGE_NAME)).get_resource("cells-csv").validate()
    assert not report.valid
    assert "hash-count" in {error[0] for error in report.flatten(["type"])}


def test_a_count_below_the_published_minimum_is_flagged_by_the_schema(tmp_path: Path) -> None:
    _write_release(tmp_path)
    text = (tmp_path / CSV_NAME).read_text().replace(",14\n", ",13\n")
    (tmp_path / CSV_NAME).write_text(text)
    report = Package(str(tmp_path / DATAPACKAGE_NAME)).get_resource("cells-csv").validate()
    assert "constraint-error" in {error[0] for error in report.flatten(["type"])}


@pytest.mark.parametrize("name", [CSV_NAME, GEOJSON_NAME, PARQUET_NAME, DATAPACKAGE_NAME])
def test_the_files_are_deterministic(tmp_path: Path, name: str) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _write_release(first)
    _write_release(second)
    assert (first / name).read_bytes() == (second / name).read_bytes()
