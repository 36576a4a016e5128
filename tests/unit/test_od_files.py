"""od release files (CSV, GeoJSON, Parquet), the flow-map preview and the gazetteer (pure)."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from pathlib import Path

import h3
import polars as pl
import pytest

from aggregation.flow_preview import MAX_FLOWS, render_flow_preview, strongest_flows
from aggregation.gazetteer import PLACES, TOWNS, WORKPLACES, nearest, within
from aggregation.od_files import OD_COLUMNS, OD_FILES, OD_MEDIA_TYPES, write_od_files
from aggregation.periods import Period, TimeBucket
from aggregation.preview import PreviewInfo
from coop.demo import geography

DAY_MS = 86_400_000
START = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1000)


def c(lat: float, lng: float, res: int = 7) -> int:
    value: int = h3.str_to_int(h3.latlng_to_cell(lat, lng, res))
    return value


LIVERPOOL, BIRKENHEAD, SOUTHPORT = c(53.4084, -2.9916), c(53.3934, -3.0148), c(53.6458, -3.0050)
ST_HELENS_8 = c(53.4539, -2.7375, 8)


def table() -> pl.DataFrame:
    """Sealed od rows in the table's order (bucket, resolution desc, origin, destination)."""
    rows = [
        (START, *sorted([LIVERPOOL, BIRKENHEAD]), 7, 31),
        (START, BIRKENHEAD, SOUTHPORT, 7, 12),
        (START + DAY_MS, LIVERPOOL, SOUTHPORT, 7, 15),
        (START + DAY_MS, ST_HELENS_8, c(53.4084, -2.9916, 8), 8, 11),
    ]
    frame = pl.DataFrame(rows, schema=["bucket", "origin", "destination", "resolution", "members"], orient="row")
    return frame.sort(["bucket", "resolution", "origin", "destination"], descending=[False, True, False, False])


def test_the_three_files_hold_exactly_the_rows_in_order(tmp_path: Path) -> None:
    rows = table()
    written = write_od_files(tmp_path, rows)
    assert [f.name for f in written] == list(OD_FILES)
    assert all(f.media_type == OD_MEDIA_TYPES[f.name] for f in written)
    expected = [
        (datetime.fromtimestamp(b / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), format(o, "x"), format(d, "x"),
         str(r), str(m)) for b, o, d, r, m in rows.iter_rows()]

    with (tmp_path / "od.csv").open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert tuple(lines[0]) == OD_COLUMNS
    assert [tuple(line) for line in lines[1:]] == expected

    collection = json.loads((tmp_path / "od.geojson").read_text())
    assert collection["type"] == "FeatureCollection"
    for feature, (bucket_start, origin, destination, resolution, members) in zip(
            collection["features"], expected, strict=True):
        assert feature["geometry"]["type"] == "LineString"
        ends = feature["geometry"]["coordinates"]
        for (lng, lat), cell in zip(ends, (origin, destination), strict=True):
            centre = h3.cell_to_latlng(cell)
            assert (lat, lng) == pytest.approx(centre, abs=1e-7)
        assert feature["properties"] == {"bucket_start": bucket_start, "origin": origin,
                                         "destination": destination, "resolution": int(resolution),
                                         "members": int(members)}

    parquet = pl.read_parquet(tmp_path / "od.parquet")
    assert parquet.columns == list(OD_COLUMNS)
    assert parquet.schema["bucket_start"] == pl.Datetime("ms", "UTC")
    assert parquet.get_column("bucket_start").dt.epoch("ms").to_list() == rows.get_column("bucket").to_list()
    assert parquet.get_column("origin").to_list() == [e[1] for e in expected]
    assert parquet.get_column("members").to_list() == rows.get_column("members").to_list()


def test_files_are_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    assert ([f.sha256 for f in write_od_files(first, table())]
            == [f.sha256 for f in write_od_files(second, table())])


def test_an_empty_table_gives_files_with_headers_only(tmp_path: Path) -> None:
    written = write_od_files(tmp_path, table().head(0))
    assert (tmp_path / "od.csv").read_text() == ",".join(OD_COLUMNS) + "\n"
    assert json.loads((tmp_path / "od.geojson").read_text())["features"] == []
    assert pl.read_parquet(tmp_path / "od.parquet").height == 0
    assert len(written) == 3


INFO = PreviewInfo(title="Commuting flows", period=Period(date(2026, 11, 2), date(2026, 11, 4)),
                   time_bucket=TimeBucket.DAY, resolution=7, k=10, source="test co-op")


def test_the_flow_map_draws_the_strongest_flows_with_legend_scale_and_labels() -> None:
    svg = render_flow_preview(table(), INFO)
    root = ET.fromstring(svg)  # noqa: S314 - our own output, checked to be well-formed
    assert root.tag.endswith("svg")
    pairs = table().select("origin", "destination").unique().height
    assert f"all {pairs} origin\u2013destination flows" in svg
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert len(titles) == pairs
    # Liverpool -> Southport: 15 members over 2 days = 7.5 per day; both ids appear in its title.
    assert any(format(SOUTHPORT, "x") in t and "7.5 members per day" in t for t in titles)
    assert "Members travelling per day, on average" in svg
    assert "km</text>" in svg or " m</text>" in svg  # the scale bar
    for town in ("Liverpool", "Southport", "Birkenhead"):
        assert f">{town}</text>" in svg


def test_only_the_strongest_flows_are_drawn() -> None:
    base = c(53.4084, -2.9916, 9)
    cells = sorted(h3.str_to_int(x) for x in h3.grid_disk(h3.int_to_str(base), 6))
    rows = pl.DataFrame([(START, cells[0], other, 9, 10 + i) for i, other in enumerate(cells[1:80])],
                        schema=["bucket", "origin", "destination", "resolution", "members"], orient="row")
    flows, total = strongest_flows(rows, buckets=1)
    assert total == 79 and len(flows) == MAX_FLOWS
    assert [f.value for f in flows] == sorted(rows.get_column("members").to_list(), reverse=True)[:MAX_FLOWS]
    svg = render_flow_preview(rows, INFO)
    assert f"the {MAX_FLOWS} strongest of 79" in svg
    assert svg.count("<title>") == MAX_FLOWS


def test_an_empty_release_says_so() -> None:
    svg = render_flow_preview(table().head(0), INFO)
    ET.fromstring(svg)  # noqa: S314 - our own output
    assert "No origin\u2013destination pair reached k = 10" in svg


def test_the_gazetteer_keeps_the_demos_places() -> None:
    demo_towns = {(p.name, p.lat, p.lng) for p in geography.TOWNS}
    assert {(p.name, p.lat, p.lng) for p in TOWNS} == demo_towns
    demo_workplaces = {(p.name.lower(), p.lat, p.lng) for p in geography.WORKPLACES}
    assert {(p.name.lower(), p.lat, p.lng) for p in WORKPLACES} <= demo_workplaces
    assert [p.rank for p in PLACES] == list(range(1, len(PLACES) + 1))
    assert nearest(53.41, -2.99).name == "Liverpool"
    assert [p.name for p in within(-3.1, 53.6, -2.9, 53.7)] == ["Southport"]
