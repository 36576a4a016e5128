"""``coop accounts erase``: the operator's way to (re-)run an erasure, e.g. after restoring a backup."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coop.accounts.roles import Role
from coop.cli import main
from coop.kit import settings as settings_module
from coop.kit.crypto import get_keyring
from coop.kit.settings import Settings
from tests.rights.test_rights_pings import minute_pings
from tests.support.factories import make_account
from tests.support.rights import consenting_member, send_pings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    monkeypatch.setenv("COOP_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COOP_DATA_DIR", str(settings.data_dir))
    settings_module.get_settings.cache_clear()
    get_keyring.cache_clear()
    yield
    settings_module.get_settings.cache_clear()
    get_keyring.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_accounts_erase_erases_a_member_and_can_be_repeated(app: FastAPI, client: TestClient,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    member = consenting_member(app, client)
    send_pings(client, member, minute_pings(12))
    assert main(["accounts", "erase", member.account_id]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["erased"], first["pings_deleted"], first["consents_withdrawn"], first["tokens_revoked"]) == (
        True, 12, 1, 1)
    assert client.get("/v1/me", headers=member.headers).status_code == 401
    assert main(["accounts", "erase", member.account_id]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["pings_deleted"], again["tokens_revoked"], again["erased_at"]) == (0, 0, first["erased_at"])


@pytest.mark.usefixtures("cli_env")
def test_accounts_erase_refuses_unknown_ids_and_non_members(app: FastAPI, capsys: pytest.CaptureFixture[str]) -> None:
    board = make_account(app, Role.BOARD)
    assert main(["accounts", "erase", "00000000-0000-0000-0000-000000000000"]) == 1
    assert main(["accounts", "erase", board.account_id]) == 1
    assert "no member" in capsys.readouterr().err
