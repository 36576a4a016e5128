"""Consent per purpose: transitions, repeats, stale policy versions, the append-only history, intervals."""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from consent.models import AppendOnlyViolation, ConsentEvent
from consent.service import set_consent, withdraw_all
from consent.state import consent_intervals, gives_any_purpose, latest_events
from coop.accounts.roles import Role
from coop.kit.db import session_scope
from coop.kit.timeutil import as_utc
from tests.support.factories import Caller, make_account, sign_up_member

PURPOSE = "transport-planning"
REPO = Path(__file__).resolve().parents[2]


def put_consent(client: TestClient, caller: Caller, purpose: str, *, given: bool,
                policy_version: str = "1") -> httpx.Response:
    response: httpx.Response = client.put(f"/v1/me/consents/{purpose}", headers=caller.headers,
                                          json={"given": given, "policy_version": policy_version})
    return response


def consents(client: TestClient, caller: Caller) -> dict[str, dict[str, Any]]:
    body = client.get("/v1/me/consents", headers=caller.headers).json()
    assert body["next_cursor"] is None
    return {item["purpose"]: item for item in body["items"]}


def all_events(client: TestClient, caller: Caller) -> list[dict[str, Any]]:
    return list(client.get("/v1/me/consents/events", headers=caller.headers).json()["items"])


def raw_event_rows(app: FastAPI) -> list[tuple[Any, ...]]:
    with app.state.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(
            "SELECT id, member_id, purpose_code, state, policy_version, at, method, receipt_id, jws "
            "FROM consent_event ORDER BY id"))]


def test_a_new_member_has_not_given_any_purpose(client: TestClient) -> None:
    member = sign_up_member(client)
    states = consents(client, member)
    assert len(states) == 6
    for item in states.values():
        assert item["state"] == "not_given"
        assert item["policy_version"] is None and item["changed_at"] is None and item["receipt_id"] is None
        assert item["current_policy_version"] == "1"
    assert all_events(client, member) == []


def test_not_given_then_given_then_withdrawn_then_given_again(client: TestClient) -> None:
    member = sign_up_member(client)
    seen_receipts = set()
    for given, state in [(True, "given"), (False, "withdrawn"), (True, "given")]:
        response = put_consent(client, member, PURPOSE, given=given)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["purpose"] == PURPOSE and body["state"] == state and body["policy_version"] == "1"
        assert body["receipt_id"] == body["receipt"]["receipt"]["record_id"]
        assert body["receipt"]["receipt"]["event_type"] == state
        assert body["receipt_id"] not in seen_receipts
        seen_receipts.add(body["receipt_id"])
        listed = consents(client, member)[PURPOSE]
        assert listed["state"] == state and listed["receipt_id"] == body["receipt_id"]
        assert listed["changed_at"] == body["changed_at"] and listed["changed_at"].endswith("Z")
        assert {p for p, item in consents(client, member).items() if item["state"] != "not_given"} == {PURPOSE}

    events = all_events(client, member)
    assert [e["state"] for e in events] == ["given", "withdrawn", "given"]
    assert {e["receipt_id"] for e in events} == seen_receipts
    assert all(e["method"] == "api" and e["purpose"] == PURPOSE and e["policy_version"] == "1" for e in events)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)


def test_repeating_the_current_state_records_nothing(client: TestClient) -> None:
    member = sign_up_member(client)
    # Withdrawing what was never given is a repeat of "not given": no event, no receipt.
    never = put_consent(client, member, PURPOSE, given=False)
    assert never.status_code == 200
    assert never.json()["state"] == "not_given" and never.json()["receipt"] is None
    assert all_events(client, member) == []

    first = put_consent(client, member, PURPOSE, given=True).json()
    again = put_consent(client, member, PURPOSE, given=True).json()
    assert again["state"] == "given"
    assert again["receipt_id"] == first["receipt_id"] and again["receipt"] == first["receipt"]
    assert again["changed_at"] == first["changed_at"]
    assert len(all_events(client, member)) == 1

    withdrawn = put_consent(client, member, PURPOSE, given=False).json()
    withdrawn_again = put_consent(client, member, PURPOSE, given=False).json()
    assert withdrawn_again["state"] == "withdrawn" and withdrawn_again["receipt_id"] == withdrawn["receipt_id"]
    assert [e["state"] for e in all_events(client, member)] == ["given", "withdrawn"]


def test_purposes_are_independent(client: TestClient) -> None:
    member = sign_up_member(client)
    put_consent(client, member, "public-health", given=True)
    put_consent(client, member, "environment", given=True)
    put_consent(client, member, "environment", given=False)
    states = {p: item["state"] for p, item in consents(client, member).items()}
    assert states == {"public-health": "given", "environment": "withdrawn", "transport-planning": "not_given",
                      "urban-planning": "not_given", "academic-research": "not_given",
                      "commercial-insights": "not_given"}


def test_stale_policy_version_is_409_and_records_nothing(client: TestClient) -> None:
    member = sign_up_member(client)
    for given, stale in [(True, "0"), (False, "0"), (True, "1\u0000"), (True, "2")]:
        response = put_consent(client, member, PURPOSE, given=given, policy_version=stale)
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "'1'" in response.json()["detail"]
    assert all_events(client, member) == []


def test_a_new_policy_version_needs_fresh_consent(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    put_consent(client, member, PURPOSE, given=True)
    with app.state.engine.begin() as connection:
        connection.execute(sa.text("UPDATE purpose SET policy_version = '2' WHERE code = :code"),
                           {"code": PURPOSE})
    listed = consents(client, member)[PURPOSE]
    assert (listed["state"], listed["policy_version"], listed["current_policy_version"]) == ("given", "1", "2")
    assert put_consent(client, member, PURPOSE, given=True, policy_version="1").status_code == 409

    renewed = put_consent(client, member, PURPOSE, given=True, policy_version="2").json()
    assert renewed["policy_version"] == "2" and renewed["receipt"]["receipt"]["policy_version"] == "2"
    assert put_consent(client, member, PURPOSE, given=True, policy_version="2").json()["receipt_id"] == \
        renewed["receipt_id"]
    assert [(e["state"], e["policy_version"]) for e in all_events(client, member)] == [("given", "1"), ("given", "2")]
    with session_scope(app.state.engine) as session:
        # Re-consent to a new version continues the same interval.
        [(_start, end)] = consent_intervals(session, member_id=member.account_id, purpose_code=PURPOSE)
        assert end is None


def test_unknown_purpose_is_404(client: TestClient) -> None:
    member = sign_up_member(client)
    for purpose in ("astrology", "events", "x" * 300):
        response = put_consent(client, member, purpose, given=True)
        assert response.status_code == 404, purpose
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("body", [
    {"given": "yes", "policy_version": "1"},
    {"given": 1, "policy_version": "1"},
    {"given": True},
    {"policy_version": "1"},
    {"given": True, "policy_version": ""},
    {"given": True, "policy_version": 1},
    {"given": True, "policy_version": "1", "extra": True},
    [],
])
def test_malformed_consent_bodies_are_422(client: TestClient, body: Any) -> None:
    member = sign_up_member(client)
    response = client.put(f"/v1/me/consents/{PURPOSE}", headers=member.headers, json=body)
    assert response.status_code == 422
    assert all_events(client, member) == []


def test_the_history_paginates_oldest_first(client: TestClient) -> None:
    member = sign_up_member(client)
    for n in range(5):
        put_consent(client, member, PURPOSE, given=n % 2 == 0)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/me/consents/events", params=params, headers=member.headers).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == all_events(client, member)
    assert [e["state"] for e in seen] == ["given", "withdrawn", "given", "withdrawn", "given"]
    assert client.get("/v1/me/consents/events", params={"cursor": "%%%"}, headers=member.headers).status_code == 422


def test_a_member_sees_only_their_own_history(client: TestClient, app: FastAPI) -> None:
    alice = sign_up_member(client)
    bob = make_account(app, Role.MEMBER)
    put_consent(client, alice, PURPOSE, given=True)
    assert all_events(client, bob) == []
    assert consents(client, bob)[PURPOSE]["state"] == "not_given"


def test_events_only_grow_and_never_change(client: TestClient, app: FastAPI) -> None:
    alice, bob = sign_up_member(client), sign_up_member(client)
    history: list[list[tuple[Any, ...]]] = [raw_event_rows(app)]
    steps = [(alice, PURPOSE, True), (bob, PURPOSE, True), (alice, PURPOSE, True), (alice, PURPOSE, False),
             (alice, "public-health", True), (bob, PURPOSE, False), (alice, PURPOSE, True)]
    for caller, purpose, given in steps:
        put_consent(client, caller, purpose, given=given)
        history.append(raw_event_rows(app))
    with session_scope(app.state.engine) as session:
        withdraw_all(session, member_id=alice.account_id, keyring=app.state.keyring)
    history.append(raw_event_rows(app))
    for before, after in itertools.pairwise(history):
        assert set(before) <= set(after)
        assert len(after) >= len(before)
    assert [len(rows) for rows in history] == [0, 1, 2, 2, 3, 4, 5, 6, 8]


def test_the_orm_refuses_to_update_or_delete_a_consent_event(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    put_consent(client, member, PURPOSE, given=True)
    with session_scope(app.state.engine) as session:
        event = session.exec(select(ConsentEvent)).one()
        event.state = "withdrawn"
        session.add(event)
        with pytest.raises(AppendOnlyViolation):
            session.flush()
        session.rollback()
    with session_scope(app.state.engine) as session:
        session.delete(session.exec(select(ConsentEvent)).one())
        with pytest.raises(AppendOnlyViolation):
            session.flush()
        session.rollback()
    with pytest.raises(AppendOnlyViolation), session_scope(app.state.engine) as session:
        session.execute(sa.update(ConsentEvent).values(state="withdrawn"))
    with pytest.raises(AppendOnlyViolation), session_scope(app.state.engine) as session:
        session.execute(sa.delete(ConsentEvent))
    assert [e["state"] for e in all_events(client, member)] == ["given"]


def test_no_code_updates_or_deletes_consent_events() -> None:
    """Grep the source: no UPDATE or DELETE of ``consent_event`` anywhere (tests may only try it)."""
    forbidden = re.compile(
        r"(update|delete)\s*\(\s*ConsentEvent\b|(UPDATE|DELETE\s+FROM)\s+[\"'`]?consent_event\b"
        r"|consent_event[\"'`]?\s*\.\s*(update|delete)\s*\(",
        re.IGNORECASE,
    )
    offenders = []
    for package in ("api", "coop", "consent", "aggregation", "migrations", "bench"):
        for path in sorted((REPO / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if forbidden.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
    # The pattern itself finds what it should.
    assert forbidden.search("session.execute(sa.update(ConsentEvent).values(state='x'))")
    assert forbidden.search('op.execute("DELETE FROM consent_event")')


def add_raw_event(app: FastAPI, *, member_id: str, event_id: str, state: str, at: datetime) -> None:
    with session_scope(app.state.engine) as session:
        receipt_id = str(uuid.uuid4())
        session.add(ConsentEvent(id=event_id, member_id=member_id, purpose_code=PURPOSE, state=state,
                                 policy_version="1", at=at, method="api", receipt_id=receipt_id,
                                 receipt={"record_id": receipt_id}, jws="unsigned-test-fixture"))


def test_a_withdrawal_at_the_same_instant_as_a_giving_wins(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    # The withdrawal's id sorts first, so only the state rule (not the id) can make it the later event.
    add_raw_event(app, member_id=member.account_id, event_id="ffffffff-0000-0000-0000-000000000000",
                  state="given", at=at)
    add_raw_event(app, member_id=member.account_id, event_id="00000000-0000-0000-0000-000000000000",
                  state="withdrawn", at=at)
    with session_scope(app.state.engine) as session:
        assert latest_events(session, member_id=member.account_id)[PURPOSE].state == "withdrawn"
        assert gives_any_purpose(session, member_id=member.account_id) is False
        assert consent_intervals(session, member_id=member.account_id, purpose_code=PURPOSE) == []
    assert consents(client, member)[PURPOSE]["state"] == "withdrawn"


def test_the_ingest_gate_follows_the_latest_event(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)

    def gate() -> bool:
        with session_scope(app.state.engine) as session:
            return gives_any_purpose(session, member_id=member.account_id)

    assert gate() is False
    put_consent(client, member, PURPOSE, given=True)
    assert gate() is True
    put_consent(client, member, "environment", given=True)
    put_consent(client, member, PURPOSE, given=False)
    assert gate() is True
    put_consent(client, member, "environment", given=False)
    assert gate() is False


def test_intervals_of_a_member_who_gave_withdrew_and_gave_again(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    for given in (True, False, True):
        put_consent(client, member, PURPOSE, given=given)
    put_consent(client, member, "public-health", given=True)
    put_consent(client, member, "public-health", given=False)
    times = [as_utc(datetime.fromisoformat(e["at"])) for e in all_events(client, member)
             if e["purpose"] == PURPOSE]
    with session_scope(app.state.engine) as session:
        intervals = consent_intervals(session, member_id=member.account_id, purpose_code=PURPOSE)
        health = consent_intervals(session, member_id=member.account_id, purpose_code="public-health")
        never = consent_intervals(session, member_id=member.account_id, purpose_code="environment")
    assert intervals == [(times[0], times[1]), (times[2], None)]
    assert times[0] < times[1] < times[2]
    assert all(start.tzinfo is not None for start, _ in intervals)
    [(health_start, health_end)] = health
    assert health_end is not None and health_start < health_end
    assert never == []


def test_intervals_from_raw_history_are_half_open_and_ordered(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    plan = [("given", 0), ("given", 1), ("withdrawn", 2), ("withdrawn", 3), ("given", 5)]
    for state, hours in reversed(plan):  # inserted out of order: the query orders them
        add_raw_event(app, member_id=member.account_id, event_id=str(uuid.uuid4()), state=state,
                      at=t0 + timedelta(hours=hours))
    with session_scope(app.state.engine) as session:
        intervals = consent_intervals(session, member_id=member.account_id, purpose_code=PURPOSE)
    assert intervals == [(t0, t0 + timedelta(hours=2)), (t0 + timedelta(hours=5), None)]


def test_withdraw_all_withdraws_every_given_purpose_once(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    put_consent(client, member, PURPOSE, given=True)
    put_consent(client, member, "public-health", given=True)
    put_consent(client, member, "environment", given=True)
    put_consent(client, member, "environment", given=False)
    with session_scope(app.state.engine) as session:
        events = withdraw_all(session, member_id=member.account_id, keyring=app.state.keyring, method="erasure")
        assert sorted(e.purpose_code for e in events) == ["public-health", PURPOSE]
    with session_scope(app.state.engine) as session:
        assert withdraw_all(session, member_id=member.account_id, keyring=app.state.keyring,
                            method="erasure") == []
        assert gives_any_purpose(session, member_id=member.account_id) is False
    history = all_events(client, member)
    erasure = [e for e in history if e["method"] == "erasure"]
    assert sorted(e["purpose"] for e in erasure) == ["public-health", PURPOSE]
    assert all(e["state"] == "withdrawn" for e in erasure)
    receipt = client.get(f"/v1/me/receipts/{erasure[0]['receipt_id']}", headers=member.headers).json()["receipt"]
    assert receipt["event_type"] == "withdrawn" and "DELETE /v1/me" in receipt["collection_method"]
    assert {p: item["state"] for p, item in consents(client, member).items()}[PURPOSE] == "withdrawn"


def test_concurrent_identical_changes_record_one_event(client: TestClient, app: FastAPI) -> None:
    member = sign_up_member(client)
    threads = 4
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []

    def give() -> None:
        barrier.wait()
        with session_scope(app.state.engine) as session:
            changed = set_consent(session, member_id=member.account_id, purpose_code=PURPOSE, given=True,
                                  policy_version="1", keyring=app.state.keyring, controller_name="Co-op")
            outcomes.append(changed.receipt_id or "")

    workers = [threading.Thread(target=give) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(outcomes) == threads
    assert len(all_events(client, member)) == 1
    assert len(set(outcomes)) == 1
