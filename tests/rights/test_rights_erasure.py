"""``DELETE /v1/me``: deletion, crypto-shredding, consent withdrawn, tokens dead, ledger kept, idempotent."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import col, select

from consent.models import ConsentEvent, PrivacyZone
from consent.state import latest_states
from coop.accounts.models import Account, MemberKey
from coop.ingest.codec import open_ping, ping_aad
from coop.ingest.models import Ping
from coop.kit.audit import AuditEvent
from coop.kit.crypto import DataKey, DecryptionError
from coop.kit.db import session_scope
from coop.ledger.journal import member_balance
from coop.ledger.models import DividendAllocation, LedgerPosting
from coop.rights.erasure import ERASED_ACTION, erase_member
from tests.rights.test_rights_pings import varied_pings
from tests.support.factories import Caller
from tests.support.rights import consenting_member, earn_dividend, give_consent, send_pings


def _member_key(app: FastAPI, member_id: str) -> MemberKey:
    with session_scope(app.state.engine) as session:
        row = session.exec(select(MemberKey).where(MemberKey.account_id == member_id)).one()
        session.expunge(row)
        return row


def _ping_rows(app: FastAPI, member_no: int) -> list[tuple[str, bytes]]:
    with session_scope(app.state.engine) as session:
        return [(client_id, bytes(blob)) for client_id, blob in session.exec(
            select(Ping.client_id, Ping.blob).where(col(Ping.member_no) == member_no)).all()]


@pytest.fixture
def erased_setup(app: FastAPI, client: TestClient) -> dict[str, object]:
    member = consenting_member(app, client, name="Erin")
    give_consent(client, member, "public-health")
    tablet = client.post("/v1/me/tokens", json={"label": "tablet"}, headers=member.headers).json()
    client.post("/v1/me/privacy-zones", headers=member.headers,
                json={"lat": 53.0, "lng": -2.0, "radius_m": 100, "label": "home"})
    sent = varied_pings()
    send_pings(client, member, sent)
    earn_dividend(app, client, member, units=2)
    neighbour = consenting_member(app, client, name="Neighbour")
    send_pings(client, neighbour, varied_pings("n"))
    return {"member": member, "tablet": tablet["token"], "sent": sent, "neighbour": neighbour}


def test_erasure_deletes_shreds_withdraws_revokes_and_keeps_the_ledger(
        app: FastAPI, client: TestClient, erased_setup: dict[str, object]) -> None:
    member = erased_setup["member"]
    neighbour = erased_setup["neighbour"]
    assert isinstance(member, Caller) and isinstance(neighbour, Caller)
    sent = erased_setup["sent"]
    assert isinstance(sent, list)
    key_before = _member_key(app, member.account_id)
    assert key_before.no is not None and key_before.wrapped_key is not None
    copied_rows = _ping_rows(app, key_before.no)
    assert len(copied_rows) == len(sent)
    copied_wrapped_key = key_before.wrapped_key
    with session_scope(app.state.engine) as session:
        balance_before = member_balance(session, member.account_id)
    assert balance_before == 10_000

    response = client.delete("/v1/me", headers=member.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["erased"] is True
    assert (body["pings_deleted"], body["privacy_zones_deleted"], body["consents_withdrawn"],
            body["tokens_revoked"]) == (len(sent), 1, 2, 2)
    assert body["erased_at"].endswith("Z")

    # Every token of the member answers 401 now, on every kind of route.
    for token in (member.token, erased_setup["tablet"]):
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/me", headers=headers).status_code == 401
        assert client.get("/v1/me/pings", headers=headers).status_code == 401
        assert client.get("/v1/me/export", headers=headers).status_code == 401
        assert client.post("/v1/pings", json={"pings": sent[:1]}, headers=headers).status_code == 401
        assert client.delete("/v1/me", headers=headers).status_code == 401

    with session_scope(app.state.engine) as session:
        assert session.exec(select(Ping.id).where(col(Ping.member_no) == key_before.no)).all() == []
        assert session.exec(select(PrivacyZone.id).where(PrivacyZone.member_id == member.account_id)).all() == []
        assert latest_states(session, member_id=member.account_id) == {
            "transport-planning": "withdrawn", "public-health": "withdrawn"}
        withdrawals = session.exec(select(ConsentEvent).where(ConsentEvent.member_id == member.account_id,
                                                              ConsentEvent.state == "withdrawn")).all()
        assert {event.method for event in withdrawals} == {"erasure"}
        assert all(app.state.keyring.verify_jws(event.jws) == event.receipt for event in withdrawals)
        # Ledger lines stay, under the pseudonymous account id.
        assert member_balance(session, member.account_id) == balance_before
        assert session.exec(select(DividendAllocation.amount_pence)
                            .where(DividendAllocation.member_id == member.account_id)).all() == [10_000]
        assert session.exec(select(LedgerPosting.amount_pence).where(
            LedgerPosting.account_code == f"member:{member.account_id}")).all() == [-10_000]
        account = session.get(Account, member.account_id)
        assert account is not None and account.erased_at is not None and account.display_name is None
        key_after = session.exec(select(MemberKey).where(MemberKey.account_id == member.account_id)).one()
        assert key_after.wrapped_key is None and key_after.shredded_at is not None
        assert key_after.no == key_before.no
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == ERASED_ACTION)).all()
        assert len(audit) == 1 and audit[0].subject_id == member.account_id
        assert audit[0].detail == {"repeat": False}  # no counts: how much a member held is their data
        remaining_keys = session.exec(select(MemberKey.account_id, MemberKey.wrapped_key)).all()

    # The copy of the ciphertext taken before erasure opens with nothing the system still holds.
    keyring = app.state.keyring
    assert all(wrapped != copied_wrapped_key for _owner, wrapped in remaining_keys)
    candidates: list[DataKey] = [DataKey(keyring.master)]
    for owner, wrapped in remaining_keys:
        if wrapped is None:
            continue
        with pytest.raises(DecryptionError):  # no stored key unwraps as the erased member's key
            keyring.unwrap_data_key(wrapped, owner=member.account_id)
        candidates.append(keyring.unwrap_data_key(wrapped, owner=owner))
    assert len(candidates) == 2  # the master key and the neighbour's data key
    for client_id, blob in copied_rows:
        for key in candidates:
            with pytest.raises(DecryptionError):
                open_ping(key, blob, member_no=key_before.no, client_id=client_id)
    with pytest.raises(DecryptionError):
        DataKey(keyring.master).decrypt(copied_rows[0][1], ping_aad(key_before.no, copied_rows[0][0]))

    # The neighbour is untouched.
    assert len(client.get("/v1/me/pings", params={"limit": 1000}, headers=neighbour.headers).json()["items"]) == 30
    assert client.get("/v1/me", headers=neighbour.headers).status_code == 200


def test_the_erasure_service_is_idempotent(app: FastAPI, client: TestClient,
                                           erased_setup: dict[str, object]) -> None:
    member = erased_setup["member"]
    assert isinstance(member, Caller)
    with session_scope(app.state.engine) as session:
        first = erase_member(session, member_id=member.account_id, keyring=app.state.keyring)
    with session_scope(app.state.engine) as session:
        events_after_first = len(session.exec(select(ConsentEvent.id)
                                              .where(ConsentEvent.member_id == member.account_id)).all())
        second = erase_member(session, member_id=member.account_id, keyring=app.state.keyring)
    assert first.pings_deleted == 30 and first.tokens_revoked == 2 and first.consents_withdrawn == 2
    assert (second.pings_deleted, second.privacy_zones_deleted, second.consents_withdrawn,
            second.tokens_revoked) == (0, 0, 0, 0)
    assert second.erased_at == first.erased_at
    with session_scope(app.state.engine) as session:
        assert len(session.exec(select(ConsentEvent.id)
                                .where(ConsentEvent.member_id == member.account_id)).all()) == events_after_first
        assert len(session.exec(select(AuditEvent.id).where(AuditEvent.action == ERASED_ACTION)).all()) == 1
        key = session.exec(select(MemberKey).where(MemberKey.account_id == member.account_id)).one()
        assert key.wrapped_key is None
        shredded_at = key.shredded_at
    with session_scope(app.state.engine) as session:
        erase_member(session, member_id=member.account_id, keyring=app.state.keyring)
        key = session.exec(select(MemberKey).where(MemberKey.account_id == member.account_id)).one()
        assert key.shredded_at == shredded_at


def test_an_erased_member_stays_out_of_every_count(app: FastAPI, client: TestClient,
                                                   erased_setup: dict[str, object]) -> None:
    member = erased_setup["member"]
    assert isinstance(member, Caller)
    assert client.delete("/v1/me", headers=member.headers).status_code == 200
    with session_scope(app.state.engine) as session:
        eligible = session.execute(sa.text(
            "SELECT COUNT(*) FROM member_key mk JOIN account a ON a.id = mk.account_id "
            "WHERE a.id = :id AND a.erased_at IS NULL AND mk.wrapped_key IS NOT NULL"),
            {"id": member.account_id}).scalar_one()
    assert eligible == 0  # the release builder's filter finds nothing to count
