"""Verified membership: who is verified (codes, admins, the setting), the admin's verify call, and who
counts (``countable_member_ids``), including k-1 sybil sign-ups pinging beside a lone victim."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from coop.accounts.roles import Role
from coop.kit.settings import Settings
from coop.kit.timeutil import utcnow
from tests.support.factories import Caller, make_account
from tests.support.membership import countable_ids, issue_codes, joined, sign_up, stage_sybil_attack


@pytest.fixture
def admin(app: FastAPI) -> Caller:
    return make_account(app, Role.ADMIN, name="Admin")


def _me(client: TestClient, caller: Caller) -> dict[str, object]:
    response = client.get("/v1/me", headers=caller.headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_sign_up_without_a_code_is_not_verified(client: TestClient, app: FastAPI) -> None:
    response = sign_up(client)
    assert response.status_code == 201 and response.json()["verified"] is False
    member = joined(response)
    assert _me(client, member)["verified"] is False
    assert member.account_id not in countable_ids(app)


def test_admin_created_accounts_are_verified(client: TestClient, app: FastAPI, admin: Caller) -> None:
    created = client.post("/v1/accounts", json={"roles": ["member"], "display_name": "Met at the fair"},
                          headers=admin.headers)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["verified"] is True
    assert created.json()["account_id"] in countable_ids(app)
    assert _me(client, make_account(app, Role.MEMBER))["verified"] is True  # the service (and CLI) path


def test_admin_verifies_a_member_once(client: TestClient, app: FastAPI, admin: Caller) -> None:
    member = joined(sign_up(client))
    before = utcnow()
    first = client.post(f"/v1/members/{member.account_id}/verify", headers=admin.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["member_id"] == member.account_id and body["verified"] is True
    verified_at = datetime.fromisoformat(body["verified_at"].replace("Z", "+00:00"))
    assert before <= verified_at <= utcnow()
    assert _me(client, member)["verified"] is True
    assert member.account_id in countable_ids(app)

    again = client.post(f"/v1/members/{member.account_id}/verify", headers=admin.headers)
    assert again.status_code == 200 and again.json() == body  # idempotent: the first verified_at stays
    trail = client.get("/v1/audit", headers=make_account(app, Role.BOARD).headers).json()["items"]
    verified = [event for event in trail if event["action"] == "member.verified"]
    assert len(verified) == 1
    assert verified[0]["subject_id"] == member.account_id and verified[0]["actor_id"] == admin.account_id
    assert verified[0]["detail"] == {"method": "admin"}


def test_verifying_anything_but_a_live_member_is_404(client: TestClient, app: FastAPI, admin: Caller) -> None:
    modeller = make_account(app, Role.MODELLER)
    erased = joined(sign_up(client))
    assert client.delete("/v1/me", headers=erased.headers).status_code == 200
    for target in (str(uuid.uuid4()), modeller.account_id, admin.account_id, erased.account_id):
        response = client.post(f"/v1/members/{target}/verify", headers=admin.headers)
        assert response.status_code == 404, (target, response.text)
        assert response.json()["detail"] == "no such member"
    assert client.post("/v1/members/not%20an%20id/verify", headers=admin.headers).status_code == 422


def test_only_admins_verify(client: TestClient, app: FastAPI) -> None:
    member = joined(sign_up(client))
    path = f"/v1/members/{member.account_id}/verify"
    assert client.post(path).status_code == 401
    for role in (Role.MEMBER, Role.MODELLER, Role.BOARD, Role.TREASURER):
        response = client.post(path, headers=make_account(app, role).headers)
        assert response.status_code == 403, (role, response.text)
    assert client.post(path, headers=member.headers).status_code == 403  # not even oneself
    assert _me(client, member)["verified"] is False


def test_erased_members_never_count(client: TestClient, app: FastAPI, admin: Caller) -> None:
    [code] = issue_codes(client, admin, 1)
    member = joined(sign_up(client, code=code))
    assert member.account_id in countable_ids(app)
    assert client.delete("/v1/me", headers=member.headers).status_code == 200
    assert member.account_id not in countable_ids(app)


def test_without_required_verification_everyone_counts(settings: Settings) -> None:
    relaxed = create_app(settings.model_copy(update={"require_verification": False}))
    with TestClient(relaxed) as client:
        response = sign_up(client)
        assert response.json()["verified"] is True
        member = joined(response)
        assert _me(client, member)["verified"] is True
        erased = joined(sign_up(client))
        assert client.delete("/v1/me", headers=erased.headers).status_code == 200
        ids = countable_ids(relaxed)
    assert member.account_id in ids and erased.account_id not in ids


def test_sybil_sign_ups_do_not_count_beside_their_victim(client: TestClient, app: FastAPI, admin: Caller) -> None:
    """Issue 15's attack, as far as accounts go: k-1 public sign-ups ping in a lone victim's cell at the
    victim's times; of the k people there only the victim is countable, so no sealed table built from
    ``countable_member_ids`` can see k members in that cell."""
    k = 10
    morning = datetime.combine(utcnow().date() - timedelta(days=3), time(7, 40), tzinfo=UTC)
    attack = stage_sybil_attack(client, admin, k=k, times=[morning + timedelta(minutes=m) for m in (0, 10, 20)])
    countable = countable_ids(app)
    assert attack.victim.account_id in countable
    assert len(attack.sybils) == k - 1
    assert not {sybil.account_id for sybil in attack.sybils} & countable
    for sybil in attack.sybils:  # their pings are stored and theirs to see
        assert len(client.get("/v1/me/pings", headers=sybil.headers).json()["items"]) == 3


def test_the_member_sees_their_verification_in_their_export(client: TestClient, app: FastAPI, admin: Caller) -> None:
    member = joined(sign_up(client))
    before = client.get("/v1/me/export", headers=member.headers).json()
    assert before["account"]["verified_at"] is None
    verified_at = client.post(f"/v1/members/{member.account_id}/verify", headers=admin.headers).json()["verified_at"]
    after = client.get("/v1/me/export", headers=member.headers).json()
    assert after["account"]["verified_at"] == verified_at
    [event] = [event for event in after["audit_events"] if event["action"] == "member.verified"]
    assert event["by"] == "co-op" and event["subject_id"] == member.account_id
