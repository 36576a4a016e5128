"""Ledger HTTP API: licence payments (idempotent), accounts, entries, verify, the signed head, the CLI."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coop.accounts.roles import Role
from coop.cli import main
from coop.kit import settings as settings_module
from coop.kit.pagination import encode_cursor
from coop.kit.settings import Settings
from coop.ledger.models import LedgerEntry
from coop.licensing.models import Licence, LicencePayment
from tests.support.factories import Caller, make_account
from tests.support.ledger import make_licence, tamper


@pytest.fixture
def treasurer(app: FastAPI) -> Caller:
    return make_account(app, Role.TREASURER, name="Tess")


def _pay(client: TestClient, caller: Caller, licence_id: str, body: dict[str, Any],
         key: str | None = None) -> Any:
    headers = dict(caller.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/v1/licences/{licence_id}/payments", json=body, headers=headers)


def _entry_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(LedgerEntry.seq)).all())


def test_a_payment_returns_its_entry_and_records_the_money(app: FastAPI, client: TestClient, engine: Engine,
                                                           treasurer: Caller) -> None:
    licence_id = make_licence(app, fee_pence=30000)
    response = _pay(client, treasurer, licence_id, {"amount_pence": 12000, "reference": "BACS 4411"}, key="k1")
    assert response.status_code == 201, response.text
    entry = response.json()
    assert set(entry) == {"seq", "entry_id", "at", "kind", "memo", "postings", "prev_hash", "hash"}
    assert entry["seq"] == 1 and entry["kind"] == "licence-payment" and entry["at"].endswith("Z")
    assert entry["postings"] == [{"account": "cash", "amount_pence": 12000},
                                 {"account": "licence-receivables", "amount_pence": -12000}]
    with Session(engine) as session:
        licence = session.get(Licence, licence_id)
        payments = session.exec(select(LicencePayment)).all()
    assert licence is not None and licence.paid_pence == 12000
    assert [(p.licence_id, p.amount_pence, p.reference, p.ledger_seq, p.recorded_by) for p in payments] == [
        (licence_id, 12000, "BACS 4411", 1, treasurer.account_id)]


def test_an_auditor_recomputes_each_hash_from_the_published_entries(app: FastAPI, client: TestClient,
                                                                    treasurer: Caller) -> None:
    licence_id = make_licence(app, fee_pence=30000)
    for amount in (100, 250, 999):
        assert _pay(client, treasurer, licence_id, {"amount_pence": amount, "reference": "r"}).status_code == 201
    items = client.get("/v1/ledger/entries", headers=treasurer.headers).json()["items"]
    prev = "0" * 64
    for item in items:
        document = {key: item[key] for key in ("seq", "entry_id", "at", "kind", "memo", "postings")}
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert item["prev_hash"] == prev
        assert item["hash"] == hashlib.sha256(prev.encode() + canonical).hexdigest()
        prev = item["hash"]


def test_a_retry_with_the_same_key_adds_nothing(app: FastAPI, client: TestClient, engine: Engine,
                                                treasurer: Caller) -> None:
    licence_id = make_licence(app, fee_pence=30000)
    body = {"amount_pence": 5000, "reference": "BACS 1"}
    first = _pay(client, treasurer, licence_id, body, key="pay-1")
    again = _pay(client, treasurer, licence_id, body, key="pay-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert _entry_count(engine) == 1
    with Session(engine) as session:
        licence = session.get(Licence, licence_id)
        assert licence is not None and licence.paid_pence == 5000
        assert len(session.exec(select(LicencePayment)).all()) == 1
    # Without a key, each request is a new payment.
    assert _pay(client, treasurer, licence_id, body).status_code == 201
    assert _pay(client, treasurer, licence_id, body).status_code == 201
    assert _entry_count(engine) == 3


def test_a_different_body_under_the_same_key_is_409(app: FastAPI, client: TestClient, engine: Engine,
                                                    treasurer: Caller) -> None:
    licence_id = make_licence(app, fee_pence=30000)
    assert _pay(client, treasurer, licence_id, {"amount_pence": 5000, "reference": "a"}, key="k").status_code == 201
    response = _pay(client, treasurer, licence_id, {"amount_pence": 5001, "reference": "a"}, key="k")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert _entry_count(engine) == 1


def test_payment_errors(app: FastAPI, client: TestClient, engine: Engine, treasurer: Caller) -> None:
    licence_id = make_licence(app, fee_pence=1000)
    assert _pay(client, treasurer, "no-such-licence", {"amount_pence": 1, "reference": "r"}).status_code == 404
    over = _pay(client, treasurer, licence_id, {"amount_pence": 1001, "reference": "r"})
    assert over.status_code == 409 and "outstanding" in over.json()["detail"]
    free = make_licence(app, fee_pence=0)
    assert _pay(client, treasurer, free, {"amount_pence": 1, "reference": "r"}).status_code == 409
    for bad in ({"amount_pence": 0, "reference": "r"}, {"amount_pence": -5, "reference": "r"},
                {"amount_pence": 10.0, "reference": "r"}, {"amount_pence": "10", "reference": "r"},
                {"amount_pence": True, "reference": "r"}, {"amount_pence": 10**13, "reference": "r"},
                {"amount_pence": 10, "reference": ""}, {"amount_pence": 10, "reference": "   "},
                {"amount_pence": 10, "reference": "a\u0000b"}, {"amount_pence": 10, "reference": "line\nbreak"},
                {"amount_pence": 10}, {"amount_pence": 10, "reference": "r", "extra": 1}):
        assert _pay(client, treasurer, licence_id, bad).status_code == 422, bad
    assert _pay(client, treasurer, "x" * 100, {"amount_pence": 1, "reference": "r"}).status_code == 422
    assert _pay(client, treasurer, "%00", {"amount_pence": 1, "reference": "r"}).status_code == 404
    assert _entry_count(engine) == 0
    assert _pay(client, treasurer, licence_id, {"amount_pence": 1, "reference": "Überweisung 7"}).status_code == 201
    assert _pay(client, treasurer, licence_id, {"amount_pence": 1, "reference": "  BACS 8  "}).status_code == 201
    assert _pay(client, treasurer, licence_id, {"amount_pence": 1, "reference": "r"}, key="k" * 201).status_code == 422
    # Paying the rest exactly is fine; then nothing more is owed.
    assert _pay(client, treasurer, licence_id, {"amount_pence": 998, "reference": "r"}).status_code == 201
    assert _pay(client, treasurer, licence_id, {"amount_pence": 1, "reference": "r"}).status_code == 409


def test_accounts_show_the_chart_and_balances_that_sum_to_zero(app: FastAPI, client: TestClient,
                                                               treasurer: Caller) -> None:
    board = make_account(app, Role.BOARD)
    empty = client.get("/v1/ledger/accounts", headers=board.headers).json()
    assert {(a["code"], a["type"], a["balance_pence"]) for a in empty["items"]} == {
        ("cash", "asset", 0), ("licence-receivables", "asset", 0), ("licence-income", "income", 0),
        ("reserve", "equity", 0)}
    licence_id = make_licence(app, fee_pence=30000)
    _pay(client, treasurer, licence_id, {"amount_pence": 7000, "reference": "r"})
    accounts = client.get("/v1/ledger/accounts", headers=board.headers).json()["items"]
    balances = {a["code"]: a["balance_pence"] for a in accounts}
    assert balances["cash"] == 7000 and balances["licence-receivables"] == -7000
    assert sum(balances.values()) == 0
    first = client.get("/v1/ledger/accounts?limit=3", headers=board.headers).json()
    rest = client.get(f"/v1/ledger/accounts?limit=3&cursor={first['next_cursor']}", headers=board.headers).json()
    assert [a["code"] for a in first["items"] + rest["items"]] == sorted(balances)
    assert rest["next_cursor"] is None


def test_entries_page_by_seq(app: FastAPI, client: TestClient, treasurer: Caller) -> None:
    licence_id = make_licence(app, fee_pence=30000)
    for amount in range(1, 6):
        _pay(client, treasurer, licence_id, {"amount_pence": amount, "reference": "r"})
    page = client.get("/v1/ledger/entries?limit=2", headers=treasurer.headers).json()
    assert [e["seq"] for e in page["items"]] == [1, 2]
    page2 = client.get(f"/v1/ledger/entries?limit=2&cursor={page['next_cursor']}", headers=treasurer.headers).json()
    assert [e["seq"] for e in page2["items"]] == [3, 4]
    after = client.get("/v1/ledger/entries?after_seq=3", headers=treasurer.headers).json()
    assert [e["seq"] for e in after["items"]] == [4, 5] and after["next_cursor"] is None
    assert all(sum(p["amount_pence"] for p in e["postings"]) == 0 for e in after["items"])
    assert client.get("/v1/ledger/entries?after_seq=-1", headers=treasurer.headers).status_code == 422
    last = client.get(f"/v1/ledger/entries?after_seq={2**31 - 1}", headers=treasurer.headers)
    assert last.status_code == 200 and last.json()["items"] == []
    assert client.get(f"/v1/ledger/entries?after_seq={2**31}", headers=treasurer.headers).status_code == 422
    for key in ([2**62], ["3"], [True], [1.5]):
        crafted = client.get(f"/v1/ledger/entries?cursor={encode_cursor(key)}", headers=treasurer.headers)
        assert crafted.status_code == 422, key
    assert client.get("/v1/ledger/entries?cursor=notacursor", headers=treasurer.headers).status_code == 422
    assert client.get("/v1/ledger/entries?limit=1001", headers=treasurer.headers).status_code == 422


def test_verify_reports_the_first_edited_entry(app: FastAPI, client: TestClient, engine: Engine,
                                               treasurer: Caller) -> None:
    assert client.get("/v1/ledger/verify", headers=treasurer.headers).json() == {
        "ok": True, "entries": 0, "head_hash": "0" * 64, "first_bad_seq": None}
    licence_id = make_licence(app, fee_pence=30000)
    hashes = [_pay(client, treasurer, licence_id, {"amount_pence": a, "reference": "r"}).json()["hash"]
              for a in (10, 20, 30)]
    assert client.get("/v1/ledger/verify", headers=treasurer.headers).json() == {
        "ok": True, "entries": 3, "head_hash": hashes[-1], "first_bad_seq": None}
    tamper(engine, "UPDATE ledger_posting SET amount_pence = amount_pence * 10 WHERE entry_seq = 2")
    assert client.get("/v1/ledger/verify", headers=treasurer.headers).json() == {
        "ok": False, "entries": 3, "head_hash": hashes[-1], "first_bad_seq": 2}


def test_the_signed_head_verifies_with_pyjwt(app: FastAPI, client: TestClient, treasurer: Caller) -> None:
    licence_id = make_licence(app, fee_pence=30000)
    last = _pay(client, treasurer, licence_id, {"amount_pence": 10, "reference": "r"}).json()
    head = client.get("/v1/ledger/head", headers=treasurer.headers).json()
    assert (head["seq"], head["hash"], head["entries"]) == (1, last["hash"], 1)
    # The auditor's recipe from docs/ledger.md: the public JWK from /v1/coop, PyJWT, EdDSA.
    jwks = client.get("/v1/coop").json()["jwks"]
    kid = jwt.get_unverified_header(head["jws"])["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    payload = jwt.decode(head["jws"], key=key, algorithms=["EdDSA"])
    assert payload == {"seq": 1, "hash": last["hash"], "at": head["at"], "entries": 1}
    forged = head["jws"].rsplit(".", 1)[0] + "." + "A" * 86
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key=key, algorithms=["EdDSA"])


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("COOP_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COOP_DATA_DIR", str(settings.data_dir))
    settings_module.get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_cli_ledger_verify(app: FastAPI, client: TestClient, engine: Engine, treasurer: Caller,
                           capsys: pytest.CaptureFixture[str]) -> None:
    licence_id = make_licence(app, fee_pence=30000)
    for amount in (10, 20, 30):
        _pay(client, treasurer, licence_id, {"amount_pence": amount, "reference": "r"})
    assert main(["ledger", "verify"]) == 0
    assert "ledger ok: 3 entries" in capsys.readouterr().out
    tamper(engine, "UPDATE ledger_entry SET memo = 'nothing to see' WHERE seq = 2")
    assert main(["ledger", "verify"]) == 1
    assert "first bad entry is seq 2" in capsys.readouterr().out
    assert main(["ledger", "verify", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["first_bad_seq"] == 2
