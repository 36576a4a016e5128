"""od (and stays) releases end to end through the API, over real sealing with real noise (a moderate budget, so a
few dozen commuters clear tau): the five files and their hashes, the rows' order and threshold, the
GeoJSON lines from centre to centre, the region rule (both ends' centres inside the bbox), the 404 for
another kind's files, and ``scripts/verify_release.py`` on an od release."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import h3
import polars as pl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.kit.settings import Settings
from tests.support.factories import Caller
from tests.support.release_checks import built_release
from tests.support.releases import Member, at, consent_event, make_member, pings
from tests.support.routines import cell_at, commute
from tests.support.tables import MONDAY, approve, dataset, modeller, seal

HOME = (53.4084, -2.9916)  # Liverpool
WORK = (53.4420, -3.0030)  # the docks
FAR = (53.6458, -3.0050)  # Southport, outside the region below
MIN_LNG, MIN_LAT, MAX_LNG, MAX_LAT = -3.05, 53.38, -2.95, 53.47
REGION = {"bbox": [MIN_LNG, MIN_LAT, MAX_LNG, MAX_LAT]}
OD_FILES = {"od.csv", "od.geojson", "od.parquet", "datapackage.json", "preview.svg"}
NEXT_DAY = MONDAY + timedelta(days=1)
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify_release.py"
BASE = "http://coop.test"
Row = tuple[str, str, str, int, int]


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    """Epsilon 20 per day: tau 17 for a daily od family at res 9, sigma about 2.5."""
    return Settings(database_url=database_url, data_dir=data_dir, terms_version="2026-11",
                    privacy_budget_per_day=100.0, family_epsilon_per_day=20.0)


def commuters(app: FastAPI, count: int, name: str, home: tuple[float, float], work: tuple[float, float]) -> list[Member]:
    found = [make_member(app, name=f"{name} {n}") for n in range(count)]
    for member in found:
        consent_event(app, member, at=at(MONDAY - timedelta(days=7)))
        pings(app, member, commute(at(MONDAY), home, work))
    return found


def od_licence(client: TestClient, app: FastAPI, who: Caller, **spec: Any) -> str:
    licence = approve(client, app, who, dataset=dataset(days=1, kind="od", **spec), fee_pence=0)
    return str(licence["licence_id"])


def download(client: TestClient, caller: Caller, release_id: str, name: str) -> bytes:
    path = name if name == "preview.svg" else f"files/{name}"
    response = client.get(f"/v1/releases/{release_id}/{path}", headers=caller.headers)
    assert response.status_code == 200, response.text
    content: bytes = response.content
    return content


def od_rows(content: bytes) -> list[Row]:
    reader = csv.reader(io.StringIO(content.decode("utf-8")))
    assert next(reader) == ["bucket_start", "origin", "destination", "resolution", "members"]
    return [(b, o, d, int(r), int(m)) for b, o, d, r, m in reader]


def contract_order(row: Row) -> tuple[str, int, int, int]:
    return (row[0], -row[3], h3.str_to_int(row[1]), h3.str_to_int(row[2]))


def centre(cell: str) -> list[float]:
    lat, lng = h3.cell_to_latlng(cell)
    return [round(lng, 7), round(lat, 7)]


def inside(cell: str) -> bool:
    lat, lng = h3.cell_to_latlng(cell)
    return bool(MIN_LAT <= lat <= MAX_LAT and MIN_LNG <= lng <= MAX_LNG)


def test_an_od_release_end_to_end(client: TestClient, app: FastAPI) -> None:
    who = modeller(app)
    licence = od_licence(client, app, who)
    commuters(app, 30, "Commuter", HOME, WORK)
    seal(app)
    manifest = built_release(client, app, who, licence, start=MONDAY, end=NEXT_DAY)
    release_id, tau = manifest["release_id"], manifest["privacy"]["tau"]
    assert manifest["dataset"]["kind"] == "od" and tau == 17
    assert {entry["name"] for entry in manifest["files"]} == OD_FILES
    files = {entry["name"]: download(client, who, release_id, entry["name"]) for entry in manifest["files"]}
    for entry in manifest["files"]:
        assert len(files[entry["name"]]) == entry["bytes"]
        assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"]

    rows = od_rows(files["od.csv"])
    assert rows and len(rows) == manifest["stats"]["rows"]
    assert rows == sorted(rows, key=contract_order)
    assert all(members >= tau for *_, members in rows)
    ends = {h3.cell_to_parent(cell_at(HOME, 9), r) for r in (7, 8, 9)} | \
        {h3.cell_to_parent(cell_at(WORK, 9), r) for r in (7, 8, 9)}
    assert all(o in ends and d in ends and o != d for _, o, d, _, _ in rows)  # only the commute is a trip
    assert all(b == "2026-11-02T00:00:00Z" for b, *_ in rows)

    features = json.loads(files["od.geojson"])["features"]
    assert [(f["properties"]["bucket_start"], f["properties"]["origin"], f["properties"]["destination"],
             f["properties"]["resolution"], f["properties"]["members"]) for f in features] == rows
    assert all(f["geometry"] == {"type": "LineString",
                                 "coordinates": [centre(f["properties"]["origin"]), centre(f["properties"]["destination"])]}
               for f in features)
    parquet = pl.read_parquet(io.BytesIO(files["od.parquet"]))
    assert parquet.columns == ["bucket_start", "origin", "destination", "resolution", "members"]
    assert parquet.get_column("members").to_list() == [row[4] for row in rows]
    assert parquet.get_column("origin").to_list() == [row[1] for row in rows]

    package = json.loads(files["datapackage.json"])
    schemas = {item["path"]: item.get("schema") for item in package["resources"]}
    assert [field["name"] for field in schemas["od.csv"]["fields"]] == ["bucket_start", "origin", "destination",
                                                                        "resolution", "members"]
    assert package["privacy"] == manifest["privacy"] and package["release"]["kind"] == "od"
    preview = files["preview.svg"].decode("utf-8")  # the flow map: one drawn flow per published pair here
    assert preview.startswith("<svg") and preview.count("<g><title>") == len(rows)
    assert f"all {len(rows)} origin\u2013destination flows" in preview

    missing = client.get(f"/v1/releases/{release_id}/files/cells.csv", headers=who.headers)
    assert missing.status_code == 404 and "has no cells.csv" in missing.json()["detail"]


def test_the_region_keeps_the_pairs_whose_two_ends_are_inside(client: TestClient, app: FastAPI) -> None:
    who = modeller(app)
    regional, everywhere = od_licence(client, app, who, region=REGION), od_licence(client, app, who)
    commuters(app, 30, "Docker", HOME, WORK)
    commuters(app, 30, "Southport worker", HOME, FAR)  # origin inside, destination outside (and back)
    seal(app)
    rows = {}
    for licence in (regional, everywhere):
        manifest = built_release(client, app, who, licence, start=MONDAY, end=NEXT_DAY)
        rows[licence] = od_rows(download(client, who, manifest["release_id"], "od.csv"))
    assert rows[regional] and all(inside(o) and inside(d) for _, o, d, _, _ in rows[regional])
    assert any(not inside(o) or not inside(d) for _, o, d, _, _ in rows[everywhere])
    # One sealed table: the regional release is exactly the whole release's pairs with both ends inside.
    assert rows[regional] == [row for row in rows[everywhere] if inside(row[1]) and inside(row[2])]


def test_a_presence_release_has_no_od_files(client: TestClient, app: FastAPI) -> None:
    who = modeller(app)
    licence = approve(client, app, who, dataset=dataset(days=1), fee_pence=0)["licence_id"]
    seal(app)
    manifest = built_release(client, app, who, licence, start=MONDAY, end=NEXT_DAY)
    for name in ("od.csv", "od.geojson", "od.parquet"):
        response = client.get(f"/v1/releases/{manifest['release_id']}/files/{name}", headers=who.headers)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.fixture
def verifier(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The verification script, its HTTP calls answered by the app in-process."""
    spec = importlib.util.spec_from_file_location("verify_release_od", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def fetch(url: str, token: str | None = None) -> bytes:
        response = client.get(url.removeprefix(BASE), headers={"Authorization": f"Bearer {token}"} if token else {})
        response.raise_for_status()
        content: bytes = response.content
        return content

    monkeypatch.setattr(module, "fetch", fetch)
    return module


def test_verify_release_verifies_an_od_release(client: TestClient, app: FastAPI, verifier: ModuleType,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    who = modeller(app)
    licence = od_licence(client, app, who)
    commuters(app, 30, "Commuter", HOME, WORK)
    seal(app)
    manifest = built_release(client, app, who, licence, start=MONDAY, end=NEXT_DAY)
    assert verifier.main(BASE, manifest["release_id"], who.token, tmp_path, download=True) == 0
    out = capsys.readouterr().out
    assert out.count("matches the signed manifest") == 5
    for name in ("od.csv", "od.geojson", "od.parquet"):
        assert f"{name}: {manifest['stats']['rows']} rows" in out
    assert "od.csv: sorted, every members >= " in out
    assert out.rstrip().endswith("release verified")



def test_verify_release_rejects_rows_out_of_order_or_below_tau(verifier: ModuleType, tmp_path: Path) -> None:
    """A file can hash right and still break the contract (the co-op signed a bad file): the row checks."""
    a, b = cell_at(HOME, 9), cell_at(WORK, 9)
    header = "bucket_start,origin,destination,resolution,members\n"
    low, high = sorted((a, b), key=h3.str_to_int)
    signed = {"k": 10, "privacy": {"tau": 17}}
    cases = {f"2026-11-02T00:00:00Z,{low},{high},9,20\n2026-11-02T00:00:00Z,{high},{low},9,18\n": True,
             f"2026-11-02T00:00:00Z,{high},{low},9,18\n2026-11-02T00:00:00Z,{low},{high},9,20\n": False,
             f"2026-11-02T00:00:00Z,{low},{high},8,20\n2026-11-02T00:00:00Z,{high},{low},9,18\n": False,
             f"2026-11-02T00:00:00Z,{low},{high},9,20\n2026-11-02T00:00:00Z,{high},{low},9,16\n": False}
    for body, expected in cases.items():
        (tmp_path / "od.csv").write_text(header + body, encoding="utf-8")
        assert verifier.check_table(signed, tmp_path, {"od.csv"}) is expected, body


def test_a_stays_release_has_the_cells_files_and_a_hexagon_map(client: TestClient, app: FastAPI) -> None:
    who = modeller(app)
    licence = approve(client, app, who, dataset=dataset(days=1, kind="stays"), fee_pence=0)["licence_id"]
    commuters(app, 30, "Commuter", HOME, WORK)
    seal(app)
    manifest = built_release(client, app, who, licence, start=MONDAY, end=NEXT_DAY)
    release_id, tau = manifest["release_id"], manifest["privacy"]["tau"]
    assert {entry["name"] for entry in manifest["files"]} == {"cells.csv", "cells.geojson", "cells.parquet",
                                                              "datapackage.json", "preview.svg"}
    lines = download(client, who, release_id, "cells.csv").decode("utf-8").splitlines()
    assert lines[0] == "bucket_start,cell,resolution,members" and len(lines) - 1 == manifest["stats"]["rows"] > 0
    stayed = {h3.cell_to_parent(cell_at(place, 9), r) for place in (HOME, WORK) for r in (7, 8, 9)}
    assert all(line.split(",")[1] in stayed and int(line.split(",")[3]) >= tau for line in lines[1:])
    preview = download(client, who, release_id, "preview.svg").decode("utf-8")
    assert "where co-op members stayed" in preview and "<path" in preview
    assert client.get(f"/v1/releases/{release_id}/files/od.csv", headers=who.headers).status_code == 404
