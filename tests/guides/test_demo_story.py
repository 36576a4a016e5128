"""The demo story end to end (small): every step through the services, tables sealed before the release,
a multi-resolution release of noisy counts at or above tau, a dividend that reconciles, a ledger that
verifies, and files a newcomer can use."""

from __future__ import annotations

import csv
import stat

from fastapi.testclient import TestClient

from api.app import create_app
from coop.demo.loader import database_is_empty, load_demo
from coop.kit.settings import Settings


def test_the_demo_tells_the_whole_story(settings: Settings) -> None:
    # 160 residents are too few for the default budget's threshold (tau ~170 per cell-day): a family at
    # epsilon 8 per member-day has tau 15, so the small demo still publishes at several resolutions
    # (three families: presence, od and stays, 8 each under a cap of 30).
    demo_settings = settings.model_copy(update={"k_floor": 5, "family_epsilon_per_day": 8.0,
                                                "privacy_budget_per_day": 30.0})
    app = create_app(demo_settings)
    assert database_is_empty(app.state.engine)
    result, out = load_demo(settings=demo_settings, size=160, seed=5, days=2, keyring=app.state.keyring)

    assert result.ingest["accepted"] > 1000
    assert result.ingest["dropped_no_consent"] > 0 and result.ingest["dropped_privacy_zone"] > 0
    with (out / "cells.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len({row["resolution"] for row in rows}) >= 2
    assert min(int(row["members"]) for row in rows) >= 5
    assert result.min_members >= 5
    for name in ("cells.geojson", "cells.parquet", "datapackage.json", "preview.svg", "manifest.jws", "ids.json"):
        assert (out / name).stat().st_size > 0
    for token_file in (out / "tokens").iterdir():
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    with TestClient(app) as client:
        def auth(role: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {(out / 'tokens' / f'{role}.token').read_text().strip()}"}

        manifest = client.get(f"/v1/releases/{result.release_id}", headers=auth("modeller")).json()
        assert manifest["status"] == "ready" and manifest["stats"]["rows"] == len(rows)
        verdict = client.get("/v1/ledger/verify", headers=auth("treasurer")).json()
        assert verdict["ok"] is True and verdict["entries"] == 7  # invoice and payment x3, dividend
        for kind, data in (("od", "od.csv"), ("stays", "cells.csv")):
            built = client.get(f"/v1/releases/{result.releases[kind]}", headers=auth("modeller")).json()
            assert built["status"] == "ready" and built["dataset"]["kind"] == kind
            assert {entry["name"] for entry in built["files"]} >= {data, "datapackage.json", "preview.svg"}
            assert (out / kind / data).read_text(encoding="utf-8").splitlines()[0].startswith("bucket_start,")
            assert built["stats"]["rows"] == result.other_release_rows[kind]
        dividend = client.get(f"/v1/dividends/{result.dividend['dividend_id']}", headers=auth("treasurer")).json()
        allocations = client.get(f"/v1/dividends/{result.dividend['dividend_id']}/allocations",
                                 params={"limit": 1000}, headers=auth("treasurer")).json()["items"]
        assert sum(a["amount_pence"] for a in allocations) == dividend["distributed_pence"]
        statement = client.get("/v1/me/statement", headers=auth("member")).json()
        assert statement["balance_pence"] > 0
    assert not database_is_empty(app.state.engine)
