"""Concurrent votes, payments, payouts and dividends (SQLite and PostgreSQL): nothing counted twice.

- Many board members voting on many requests at once: each request is decided once, gets at most one
  licence and one fee invoice in the ledger.
- The same payment sent by many clients at once with one Idempotency-Key: one ledger entry, every client
  gets the same 201 body.
- Different payments racing past a licence's outstanding fee, payouts racing past a member's balance,
  overlapping dividends: exactly the ones that fit succeed, the rest get a clean 409.
- After every race the ledger's hash chain verifies and its postings sum to zero.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from coop.accounts.roles import Role
from coop.kit.timeutil import utcnow
from coop.ledger.models import LedgerEntry, LedgerPosting
from coop.ledger.verify import verify_chain
from coop.licensing.models import Licence, LicencePayment, LicenceRequest, Vote
from tests.support.concurrency import Call, race
from tests.support.factories import Caller, make_account
from tests.support.ledger import make_licence, make_release, noon, pay_licence
from tests.support.licensing import board_members, submit

SECTION = "concurrency"


def assert_ledger_sound(engine: Engine) -> int:
    """The chain verifies and every entry balances; returns the number of entries."""
    with engine.connect() as connection:
        report = verify_chain(connection)
    assert report.ok, report
    with Session(engine) as session:
        unbalanced = session.exec(select(LedgerPosting.entry_seq).group_by(col(LedgerPosting.entry_seq))
                                  .having(func.sum(LedgerPosting.amount_pence) != 0)).all()
    assert unbalanced == []
    return report.entries


def _entries_of_kind(engine: Engine, kind: str) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == kind)).one()


def test_many_boards_voting_on_many_requests_decide_each_once(app: FastAPI, client: TestClient,
                                                              engine: Engine) -> None:
    modeller = make_account(app, Role.MODELLER)
    voters = board_members(app, 6)
    requests = [submit(client, modeller)["request_id"] for _ in range(4)]
    decisions = ["approve", "reject", "approve", "abstain", "approve", "reject"]
    calls = [Call("POST", f"/v1/licence-requests/{request_id}/votes", voter.headers,
                  json={"decision": decisions[(n + m) % len(decisions)]})
             for n, request_id in enumerate(requests) for m, voter in enumerate(voters)]
    answers = race(app, calls, section=SECTION)
    assert {a.status for a in answers} <= {201, 409}, answers
    accepted = Counter(call.path.split("/")[3] for call, a in zip(calls, answers, strict=True) if a.status == 201)

    with Session(engine) as session:
        statuses = dict(session.exec(select(LicenceRequest.id, LicenceRequest.status)).all())
        licences = Counter(session.exec(select(Licence.request_id)).all())
        votes = Counter(session.exec(select(Vote.request_id)).all())
    assert votes == accepted
    approved = [r for r in requests if statuses[r] == "approved"]
    assert all(licences[r] == 1 for r in approved)
    assert sum(licences.values()) == len(approved)
    quorum = app.state.settings.board_quorum
    for request_id in requests:
        votes = client.get(f"/v1/licence-requests/{request_id}", headers=voters[0].headers).json()["votes"]
        if statuses[request_id] != "submitted":
            tally = Counter(v["decision"] for v in votes)
            assert max(tally["approve"], tally["reject"]) == quorum
    assert _entries_of_kind(engine, "licence-invoice") == len(approved)  # one fee invoice per licence
    assert_ledger_sound(engine)


def test_the_same_payment_sent_at_once_with_one_key_is_one_entry(app: FastAPI, engine: Engine) -> None:
    treasurer = make_account(app, Role.TREASURER)
    for round_no in range(3):
        licence_id = make_licence(app, fee_pence=50_000)
        call = Call("POST", f"/v1/licences/{licence_id}/payments", treasurer.headers,
                    json={"amount_pence": 20_000, "reference": f"BACS {round_no}"},
                    extra_headers={"Idempotency-Key": f"key-{round_no}"})
        answers = race(app, [call] * 8, section=SECTION)
        assert {a.status for a in answers} == {201}, answers
        assert len({a.body["entry_id"] for a in answers}) == 1
        with Session(engine) as session:
            licence = session.get(Licence, licence_id)
            payments = session.exec(select(LicencePayment).where(LicencePayment.licence_id == licence_id)).all()
        assert licence is not None and licence.paid_pence == 20_000
        assert len(payments) == 1
    assert _entries_of_kind(engine, "licence-payment") == 3
    assert_ledger_sound(engine)


def test_payments_racing_past_the_fee_take_only_what_is_owed(app: FastAPI, engine: Engine) -> None:
    treasurers = [make_account(app, Role.TREASURER) for _ in range(2)]
    licence_id = make_licence(app, fee_pence=1_000)
    calls = [Call("POST", f"/v1/licences/{licence_id}/payments", treasurers[n % 2].headers,
                  json={"amount_pence": 300, "reference": f"BACS {n}"}, extra_headers={"Idempotency-Key": f"k{n}"})
             for n in range(8)]
    answers = race(app, calls, section=SECTION)
    assert Counter(a.status for a in answers) == {201: 3, 409: 5}, answers
    with Session(engine) as session:
        licence = session.get(Licence, licence_id)
    assert licence is not None and licence.paid_pence == 900
    assert _entries_of_kind(engine, "licence-payment") == 3
    assert_ledger_sound(engine)


def _member_with_balance(app: FastAPI, client: TestClient, treasurer: Caller) -> Caller:
    """A member owed 8,000 pence by a declared dividend (a 10,000 pool, 20% reserve)."""
    member = make_account(app, Role.MEMBER)
    modeller = make_account(app, Role.MODELLER)
    licence_id = make_licence(app, fee_pence=10_000, licensee=modeller)
    start = utcnow().date() - timedelta(days=40)
    pay_licence(app, licence_id=licence_id, amount_pence=10_000, received_at=noon(start),
                recorded_by=treasurer.account_id)
    make_release(app, licence_id=licence_id, requested_by=modeller.account_id, built_at=noon(start),
                 units={member.account_id: 5})
    declared = client.post("/v1/dividends", json={"period_start": start.isoformat(),
                                                  "period_end": (start + timedelta(days=1)).isoformat(),
                                                  "reserve_bps": 2000}, headers=treasurer.headers)
    assert declared.status_code == 201, declared.text
    return member


def test_payouts_racing_past_a_balance_pay_out_at_most_the_balance(app: FastAPI, client: TestClient,
                                                                   engine: Engine) -> None:
    treasurer = make_account(app, Role.TREASURER)
    member = _member_with_balance(app, client, treasurer)
    calls = [Call("POST", f"/v1/members/{member.account_id}/payouts", treasurer.headers,
                  json={"amount_pence": 3_000, "reference": f"payout {n}"},
                  extra_headers={"Idempotency-Key": f"payout-{n}"}) for n in range(6)]
    answers = race(app, calls, section=SECTION)
    assert Counter(a.status for a in answers) == {201: 2, 409: 4}, answers
    statement = client.get("/v1/me/statement", headers=member.headers).json()
    assert statement["balance_pence"] == 8_000 - 2 * 3_000
    assert_ledger_sound(engine)


def test_overlapping_dividends_declared_at_once_declare_one(app: FastAPI, engine: Engine) -> None:
    treasurers = [make_account(app, Role.TREASURER) for _ in range(3)]
    today = utcnow().date()
    calls = [Call("POST", "/v1/dividends", treasurers[n % 3].headers,
                  json={"period_start": (today - timedelta(days=30 + n)).isoformat(),
                        "period_end": (today - timedelta(days=n)).isoformat()},
                  extra_headers={"Idempotency-Key": f"dividend-{n}"}) for n in range(6)]
    answers = race(app, calls, section=SECTION)
    assert Counter(a.status for a in answers) == {201: 1, 409: 5}, answers
    assert_ledger_sound(engine)
