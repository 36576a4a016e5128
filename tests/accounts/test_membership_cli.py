"""``coop invitations create`` prints codes that verify at sign-up; ``coop accounts create`` verifies."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from coop.cli import main
from coop.kit import settings as settings_module
from coop.kit.settings import Settings
from tests.support.membership import sign_up

CODE = re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("COOP_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COOP_DATA_DIR", str(settings.data_dir))
    settings_module.get_settings.cache_clear()
    from coop.kit.crypto import get_keyring

    get_keyring.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_invitations_create_prints_working_codes(capsys: pytest.CaptureFixture[str], client: TestClient) -> None:
    assert main(["invitations", "create", "--count", "3", "--note", "street stall", "--valid-days", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "3 invitation code(s)" in lines[0]
    codes = lines[1:]
    assert len(codes) == 3 and all(CODE.match(code) for code in codes)
    answer = sign_up(client, code=codes[0])
    assert answer.status_code == 201 and answer.json()["verified"] is True

    assert main(["invitations", "create", "--count", "2", "--json"]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert set(issued) == {"codes", "expires_at"} and len(issued["codes"]) == 2


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("args", [["--count", "0"], ["--count", "1001"], ["--count", "1", "--valid-days", "400"],
                                  ["--count", "1", "--note", "x" * 201], []])
def test_invitations_create_refuses_bad_arguments(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["invitations", "create", *args])
    assert exited.value.code == 2


@pytest.mark.usefixtures("cli_env")
def test_accounts_created_on_the_command_line_are_verified(capsys: pytest.CaptureFixture[str],
                                                           client: TestClient) -> None:
    assert main(["accounts", "create", "--role", "member", "--name", "Met in person", "--json"]) == 0
    token = json.loads(capsys.readouterr().out)["token"]
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["verified"] is True
