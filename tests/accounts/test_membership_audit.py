"""What the board's audit trail says about members and invitations: that things happened, never how
much of a member's data there was (no counts), and never a code, its hash or the admin's note."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from coop.accounts.models import Invitation
from coop.accounts.roles import Role
from coop.kit.db import session_scope
from tests.support.factories import make_account
from tests.support.membership import give_consent_and_ping, issue_codes, joined, sign_up
from tests.support.rights import base_time

COUNT_WORDS = ("deleted", "withdrawn", "revoked", "pings", "zones", "tokens", "consent_event")


def _board_trail(client: TestClient, app: FastAPI) -> tuple[list[dict[str, Any]], str]:
    response = client.get("/v1/audit", params={"limit": 1000}, headers=make_account(app, Role.BOARD).headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items, response.text


def test_issuing_codes_is_audited_with_the_count_only(client: TestClient, app: FastAPI) -> None:
    admin = make_account(app, Role.ADMIN)
    note = "north-end-library-evening"
    codes = issue_codes(client, admin, 3, note=note)
    with session_scope(app.state.engine) as session:
        hashes = session.exec(select(Invitation.code_hash)).all()
        [batch_id] = set(session.exec(select(Invitation.batch_id)).all())
    items, text = _board_trail(client, app)
    [event] = [item for item in items if item["action"] == "invitations.issued"]
    assert event["actor_id"] == admin.account_id
    assert (event["subject_type"], event["subject_id"]) == ("invitation_batch", batch_id)
    assert event["detail"] == {"count": 3}
    leaked = [secret for secret in [note, *codes, *(c.replace("-", "") for c in codes), *hashes] if secret in text]
    assert not leaked


def test_the_board_sees_an_erasure_without_counts(client: TestClient, app: FastAPI) -> None:
    admin = make_account(app, Role.ADMIN)
    [code] = issue_codes(client, admin, 1)
    member = joined(sign_up(client, code=code))
    give_consent_and_ping(client, member, prefix="erin", times=[base_time()])
    zone = client.post("/v1/me/privacy-zones", json={"lat": 53.0, "lng": -2.0, "radius_m": 100},
                       headers=member.headers)
    assert zone.status_code == 201
    erased = client.delete("/v1/me", headers=member.headers)
    assert erased.status_code == 200
    assert erased.json()["pings_deleted"] == 1 and erased.json()["privacy_zones_deleted"] == 1  # the member's own answer

    items, text = _board_trail(client, app)
    [event] = [item for item in items if item["action"] == "member.erased"]
    assert event["subject_id"] == member.account_id
    assert event["detail"] == {"repeat": False}
    assert not [word for word in COUNT_WORDS if word in text]
    about_member = [item for item in items if member.account_id in (item["actor_id"], item["subject_id"])]
    assert [item["action"] for item in about_member] == ["member.erased"]  # zones and sign-up are not the board's
