"""docs/releases.md's pandas example, run against a real od release (built through the API over real
sealing): it loads, and its zone-to-zone matrix holds exactly the release's members per bucket."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import h3
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.kit.settings import Settings
from tests.support.release_checks import built_release
from tests.support.releases import at, consent_event, make_member, pings
from tests.support.routines import commute
from tests.support.tables import MONDAY, approve, dataset, modeller, seal

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "releases.md"
TESTED_BLOCK = re.compile(r"<!-- tested: tests/guides/test_releases_guide.py -->\n```python\n(.*?)```", re.S)
HOME, WORK = (53.4084, -2.9916), (53.4420, -3.0030)
DAYS = 2


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, terms_version="2026-11",
                    privacy_budget_per_day=100.0, family_epsilon_per_day=20.0)


def snippet() -> str:
    blocks = TESTED_BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) == 1, "docs/releases.md has one tested pandas block"
    return str(blocks[0])


def test_the_pandas_example_builds_the_zone_matrix_of_an_od_release(client: TestClient, app: FastAPI,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    who = modeller(app)
    licence = approve(client, app, who, dataset=dataset(days=DAYS, kind="od"), fee_pence=0)["licence_id"]
    for n in range(30):
        member = make_member(app, name=f"Commuter {n}")
        consent_event(app, member, at=at(MONDAY - timedelta(days=7)))
        pings(app, member, [p for day in range(DAYS) for p in commute(at(MONDAY + timedelta(days=day)), HOME, WORK)])
    seal(app)
    manifest = built_release(client, app, who, licence, start=MONDAY, end=MONDAY + timedelta(days=DAYS))
    download = tmp_path / "download"
    download.mkdir()
    for name in ("od.csv", "datapackage.json"):
        response = client.get(f"/v1/releases/{manifest['release_id']}/files/{name}", headers=who.headers)
        assert response.status_code == 200, response.text
        (download / name).write_bytes(response.content)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(compile(snippet(), str(GUIDE), "exec"), scope)  # noqa: S102 (the guide's own example)

    rows = [line.split(",") for line in (download / "od.csv").read_text(encoding="utf-8").splitlines()[1:]]
    assert rows, "the release publishes the commute"
    expected: dict[tuple[str, str], float] = {}
    for _, origin, destination, _, members in rows:
        key = (h3.cell_to_parent(origin, 7), h3.cell_to_parent(destination, 7))
        expected[key] = expected.get(key, 0.0) + int(members) / DAYS
    matrix, flows = scope["matrix"], scope["flows"]
    assert scope["buckets"] == DAYS
    for (origin, destination), value in expected.items():
        assert matrix.loc[origin, destination] == pytest.approx(value)
    assert float(matrix.to_numpy().sum()) == pytest.approx(sum(expected.values()))
    assert list(flows["members_per_bucket"]) == sorted(expected.values(), reverse=True)
    assert int(scope["by_hour"].sum()) == sum(int(row[4]) for row in rows)
