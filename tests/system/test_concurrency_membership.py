"""Concurrent sign-ups on one invitation code, and admins verifying one member at once (SQLite and
PostgreSQL): a code admits exactly one member; a member is verified once, with one audit event.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from coop.accounts.models import Account, Invitation
from coop.accounts.roles import Role
from coop.kit.audit import AuditEvent
from tests.support.concurrency import Call, race
from tests.support.factories import make_account
from tests.support.membership import issue_codes, joined, sign_up

SECTION = "concurrency"
RACERS = 6


def _accounts(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Account)).one()


def test_sign_ups_racing_one_code_admit_one_member(app: FastAPI, client: TestClient, engine: Engine) -> None:
    admin = make_account(app, Role.ADMIN)
    [code] = issue_codes(client, admin, 1)
    terms = app.state.settings.terms_version
    before = _accounts(engine)
    answers = race(app, [Call("POST", "/v1/members", {}, json={"accept_terms_version": terms,
                                                              "invitation_code": code,
                                                              "display_name": f"Racer {n}"})
                         for n in range(RACERS)], section=SECTION)
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] + [422] * (RACERS - 1), answers
    [winner] = [answer.body for answer in answers if answer.status == 201]
    assert winner["verified"] is True
    assert all(answer.body["type"] == "urn:coop:problem:invalid-invitation" for answer in answers
               if answer.status == 422)
    assert _accounts(engine) == before + 1  # the losers recorded nothing
    with Session(engine) as session:
        assert session.exec(select(Invitation.used_by)).all() == [winner["member_id"]]


def test_admins_verifying_one_member_at_once_verify_once(app: FastAPI, client: TestClient,
                                                         engine: Engine) -> None:
    admins = [make_account(app, Role.ADMIN, name=f"Admin {n}") for n in range(4)]
    member = joined(sign_up(client))
    answers = race(app, [Call("POST", f"/v1/members/{member.account_id}/verify", admin.headers)
                         for admin in admins], section=SECTION)
    assert [answer.status for answer in answers] == [200] * len(admins), answers
    assert len({answer.body["verified_at"] for answer in answers}) == 1
    with Session(engine) as session:
        events = session.exec(select(func.count()).select_from(AuditEvent)
                              .where(col(AuditEvent.action) == "member.verified")).one()
    assert events == 1
