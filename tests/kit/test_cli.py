"""The ``coop`` command: accounts create (plain and --json), db upgrade, openapi."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from coop.cli import main
from coop.kit import settings as settings_module
from coop.kit.settings import Settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("COOP_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COOP_DATA_DIR", str(settings.data_dir))
    settings_module.get_settings.cache_clear()
    from coop.kit.crypto import get_keyring

    get_keyring.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_accounts_create_json_prints_a_working_token(capsys: pytest.CaptureFixture[str],
                                                     client: TestClient) -> None:
    assert main(["accounts", "create", "--role", "board", "--role", "treasurer", "--name", "Bea",
                 "--organisation", "LCR Co-op", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert set(created) == {"account_id", "token", "token_id"}
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {created['token']}"}).json()
    assert me["account_id"] == created["account_id"]
    assert me["roles"] == ["board", "treasurer"]


@pytest.mark.usefixtures("cli_env")
def test_accounts_create_plain_prints_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accounts", "create", "--role", "modeller", "--name", "Mo"]) == 0
    assert "coop_" in capsys.readouterr().out


@pytest.mark.usefixtures("cli_env")
def test_db_upgrade_is_idempotent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0


@pytest.mark.usefixtures("cli_env")
def test_openapi_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "/v1/coop" in document["paths"] and "ProblemDetail" in document["components"]["schemas"]
