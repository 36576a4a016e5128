"""Invitation codes: issuing (admin only), signing up with one (verified at once), and every way a code
is refused (unknown, malformed, used, expired: 422, and the refused sign-up records nothing)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import col, select

from coop.accounts.invitations import canonical_code, hash_code, issue_invitations, new_code
from coop.accounts.models import Account, Invitation
from coop.accounts.roles import Role
from coop.kit.db import session_scope
from coop.kit.timeutil import utcnow
from tests.support.factories import Caller, make_account
from tests.support.membership import issue_codes, joined, sign_up

CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$")


@pytest.fixture
def admin(app: FastAPI) -> Caller:
    return make_account(app, Role.ADMIN, name="Admin")


def _table_counts(app: FastAPI) -> tuple[int, int, int]:
    """(accounts, used invitations, member keys)."""
    with session_scope(app.state.engine) as session:
        accounts = session.execute(sa.select(sa.func.count()).select_from(Account)).scalar_one()
        used = session.execute(sa.select(sa.func.count()).select_from(Invitation)
                               .where(col(Invitation.used_at).is_not(None))).scalar_one()
        keys = session.execute(sa.text("SELECT COUNT(*) FROM member_key")).scalar_one()
        return accounts, used, keys


def test_admin_issues_distinct_typable_codes_that_expire(client: TestClient, admin: Caller) -> None:
    before = utcnow()
    response = client.post("/v1/invitations", json={"count": 25, "note": "spring fair", "valid_days": 14},
                           headers=admin.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"codes", "expires_at"}
    assert len(body["codes"]) == len(set(body["codes"])) == 25
    assert all(CODE_SHAPE.match(code) for code in body["codes"])
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(days=14) <= expires_at <= utcnow() + timedelta(days=14)


def test_codes_default_to_thirty_days(client: TestClient, admin: Caller) -> None:
    body = client.post("/v1/invitations", json={"count": 1}, headers=admin.headers).json()
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=29, hours=23) < expires_at - utcnow() <= timedelta(days=30)


@pytest.mark.parametrize("body", [{"count": 0}, {"count": 1001}, {"count": 1, "valid_days": 0},
                                  {"count": 1, "valid_days": 366}, {"count": 1, "note": "x" * 201},
                                  {"count": 1, "code": "mine"}, {}])
def test_bad_issue_requests_are_422(client: TestClient, admin: Caller, body: dict[str, object]) -> None:
    response = client.post("/v1/invitations", json=body, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_codes_are_stored_only_as_hashes(client: TestClient, app: FastAPI, admin: Caller) -> None:
    codes = issue_codes(client, admin, 3, note="door to door")
    with session_scope(app.state.engine) as session:
        rows = session.exec(select(Invitation)).all()
        stored = " ".join(str(value) for row in rows for value in row.model_dump().values())
    assert {row.code_hash for row in rows} == {hash_code(code.replace("-", "")) for code in codes}
    assert not any(code in stored or code.replace("-", "") in stored for code in codes)


def test_only_admins_issue_codes(client: TestClient, app: FastAPI) -> None:
    assert client.post("/v1/invitations", json={"count": 1}).status_code == 401
    for role in (Role.MEMBER, Role.MODELLER, Role.BOARD, Role.TREASURER):
        caller = make_account(app, role)
        response = client.post("/v1/invitations", json={"count": 1}, headers=caller.headers)
        assert response.status_code == 403, (role, response.text)


def test_signing_up_with_a_code_verifies_at_once(client: TestClient, admin: Caller) -> None:
    [code] = issue_codes(client, admin, 1)
    response = sign_up(client, code=code)
    assert response.status_code == 201, response.text
    assert response.json()["verified"] is True
    member = joined(response)
    me = client.get("/v1/me", headers=member.headers).json()
    assert me["verified"] is True


def test_codes_are_forgiving_to_type(client: TestClient, admin: Caller) -> None:
    [code] = issue_codes(client, admin, 1)
    typed = " ".join(code.lower().split("-")).replace("0", "o").replace("1", "l")
    assert joined(sign_up(client, code=typed))
    assert canonical_code(typed) == code.replace("-", "")


def _assert_refused(client: TestClient, app: FastAPI, code: str) -> None:
    before = _table_counts(app)
    response = sign_up(client, code=code)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:coop:problem:invalid-invitation"
    assert "unknown, already used or expired" in problem["detail"]
    assert "token" not in problem
    assert _table_counts(app) == before  # the refused sign-up recorded nothing


def test_a_used_code_is_422_and_that_sign_up_records_nothing(client: TestClient, app: FastAPI,
                                                              admin: Caller) -> None:
    [code] = issue_codes(client, admin, 1)
    first = joined(sign_up(client, code=code))
    _assert_refused(client, app, code)
    with session_scope(app.state.engine) as session:
        used_by = session.exec(select(Invitation.used_by)).all()
    assert used_by == [first.account_id]


@pytest.mark.parametrize("code", ["AAAA-BBBB-CCCC-DDDD", "not a code", "7KQ2-M9XD-4HTB", "U" * 16, "-"])
def test_unknown_or_malformed_codes_are_422(client: TestClient, app: FastAPI, admin: Caller, code: str) -> None:
    issue_codes(client, admin, 2)
    _assert_refused(client, app, code)


def test_an_expired_code_is_422(client: TestClient, app: FastAPI, admin: Caller) -> None:
    with session_scope(app.state.engine) as session:
        issued = issue_invitations(session, created_by=admin.account_id, count=1, note=None, valid_days=3,
                                   now=utcnow() - timedelta(days=3, seconds=1))
    _assert_refused(client, app, issued.codes[0])


def test_a_code_is_checked_after_the_terms(client: TestClient, admin: Caller) -> None:
    [code] = issue_codes(client, admin, 1)
    stale = client.post("/v1/members", json={"accept_terms_version": "1999-01", "invitation_code": code})
    assert stale.status_code == 409
    assert joined(sign_up(client, code=code))  # the code was not spent by the refused sign-up


def test_new_codes_carry_eighty_random_bits() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    symbols = "".join(code.replace("-", "") for code in codes)
    assert len(set(symbols)) == 32  # every symbol of the alphabet turns up
    assert all(canonical_code(code) == code.replace("-", "") for code in codes)
