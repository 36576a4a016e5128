"""``scripts/verify_release.py`` as a modeller runs it (its HTTP calls answered by the app in-process):
every listed file verifies, a tampered byte fails, and a release built before sealed tables (older
manifest shape, two files) still downloads and verifies exactly as signed."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import h3
import polars as pl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregation.writers import CSV_NAME, GEOJSON_NAME, printable_rows, write_csv, write_geojson
from coop.accounts.models import Role
from coop.kit.db import session_scope
from coop.kit.timeutil import rfc3339, utcnow
from coop.licensing.models import Licence
from coop.releases.builder import release_dir
from coop.releases.models import Release
from tests.support.factories import Caller, make_account
from tests.support.release_checks import built_release
from tests.support.releases import at, cell10, make_licence, make_member
from tests.support.sealed import make_family, seal_bucket, seal_period

MONDAY = date(2026, 11, 2)
X9 = h3.cell_to_parent(cell10(), 9)
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify_release.py"
BASE = "http://coop.test"


@pytest.fixture
def verifier(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_release", SCRIPT)
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


@pytest.fixture
def modeller(app: FastAPI) -> Caller:
    return make_account(app, Role.MODELLER, name="Modeller", organisation="Merseytravel Analytics")


@pytest.fixture
def ready(client: TestClient, app: FastAPI, modeller: Caller) -> dict[str, Any]:
    family = make_family(app, time_bucket="day", resolution=9, tau=3)
    members = [make_member(app, name=f"Resident {n}").caller.account_id for n in range(4)]
    seal_bucket(app, family, start=at(MONDAY), time_bucket="day",
                cells=[(X9, 4), (h3.cell_to_parent(X9, 8), 7)], inputs=members)
    seal_period(app, family, start=MONDAY + timedelta(days=1), end=MONDAY + timedelta(days=7), time_bucket="day")
    licence = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), time_bucket="day",
                           k=3, family_id=family)
    return built_release(client, app, modeller, licence, start=MONDAY, end=MONDAY + timedelta(days=7))


def test_every_file_of_a_release_verifies(verifier: ModuleType, modeller: Caller, ready: dict[str, Any],
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verifier.main(BASE, ready["release_id"], modeller.token, tmp_path, download=True) == 0
    out = capsys.readouterr().out
    assert "manifest signature verified" in out
    assert out.count("matches the signed manifest") == len(ready["files"]) == 5
    assert "datapackage.json: resources match the signed manifest" in out
    for name in ("cells.csv", "cells.geojson", "cells.parquet"):
        assert f"{name}: 2 rows" in out
    assert out.rstrip().endswith("release verified")


@pytest.mark.parametrize("name", ["cells.parquet", "preview.svg", "datapackage.json", "cells.csv"])
def test_a_tampered_file_fails(verifier: ModuleType, modeller: Caller, ready: dict[str, Any], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert verifier.main(BASE, ready["release_id"], modeller.token, tmp_path, download=True) == 0
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / name).write_bytes(bytes(data))
    capsys.readouterr()
    assert verifier.main(BASE, ready["release_id"], modeller.token, tmp_path) == 1
    out = capsys.readouterr().out
    assert f"{name}: DOES NOT MATCH" in out and "release NOT verified" in out


def test_a_missing_file_fails(verifier: ModuleType, modeller: Caller, ready: dict[str, Any], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert verifier.main(BASE, ready["release_id"], modeller.token, tmp_path, download=True) == 0
    (tmp_path / "cells.parquet").unlink()
    assert verifier.main(BASE, ready["release_id"], modeller.token, tmp_path) == 1
    assert "cells.parquet: MISSING" in capsys.readouterr().out


def _legacy_release(app: FastAPI, modeller: Caller) -> tuple[str, dict[str, Any]]:
    """A release as the k-anonymous builder made it: two files, older stats, no family, signed then."""
    licence_id = make_licence(app, modeller, start=MONDAY, end=MONDAY + timedelta(days=7), k=2)
    release_id = str(uuid.uuid4())
    rows = pl.DataFrame({"bucket": [1_793_610_000_000], "cell": [h3.str_to_int(X9)], "resolution": [9],
                         "members": [3]})
    directory = release_dir(app.state.settings, release_id)
    directory.mkdir(parents=True)
    printable = printable_rows(rows)
    files = [write_csv(directory / CSV_NAME, printable).as_manifest_entry(),
             write_geojson(directory / GEOJSON_NAME, printable, [h3.str_to_int(X9)]).as_manifest_entry()]
    built = utcnow() - timedelta(days=20)
    stats = {"rows": 1, "generalised_rows": 0, "suppressed_contributions": 2, "pings_considered": 8}
    with session_scope(app.state.engine) as session:
        licence = session.get(Licence, licence_id)
        assert licence is not None
        payload = {"release_id": release_id, "licence_id": licence_id, "purpose": licence.purpose_code,
                   "dataset": licence.dataset, "k": licence.k, "start": MONDAY.isoformat(),
                   "end": (MONDAY + timedelta(days=1)).isoformat(), "status": "ready", "progress": 1.0,
                   "built_at": rfc3339(built), "stats": stats, "files": files, "error": None}
        session.add(Release(id=release_id, licence_id=licence_id, requested_by=modeller.account_id,
                            start=MONDAY, end=MONDAY + timedelta(days=1), status="ready", progress=1.0,
                            created_at=built, built_at=built, stats=stats, files=files,
                            jws=app.state.keyring.sign_jws(payload)))
    return release_id, payload


def test_a_release_built_before_sealed_tables_still_downloads_and_verifies(
        client: TestClient, app: FastAPI, verifier: ModuleType, modeller: Caller, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    release_id, payload = _legacy_release(app, modeller)
    served = client.get(f"/v1/releases/{release_id}", headers=modeller.headers).json()
    assert {k: v for k, v in served.items() if k != "jws"} == payload  # exactly as signed then
    for name in ("cells.csv", "cells.geojson"):
        assert client.get(f"/v1/releases/{release_id}/files/{name}", headers=modeller.headers).status_code == 200
    assert client.get(f"/v1/releases/{release_id}/files/cells.parquet",
                      headers=modeller.headers).status_code == 404
    assert verifier.main(BASE, release_id, modeller.token, tmp_path, download=True) == 0
    out = capsys.readouterr().out
    assert out.count("matches the signed manifest") == 2 and "release verified" in out
