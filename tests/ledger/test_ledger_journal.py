"""The journal: balanced entries only, a linear hash chain (also under parallel writers), append-only rows."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coop.accounts.roles import Role
from coop.kit.crypto import canonical_json
from coop.kit.db import session_scope
from coop.ledger.chart import CASH, LICENCE_INCOME, LICENCE_RECEIVABLES, RESERVE, member_account_code
from coop.ledger.journal import GENESIS_HASH, InvalidPosting, PostedEntry, entry_document, post_entry
from coop.ledger.models import LedgerAccount, LedgerEntry, LedgerPosting
from coop.ledger.postings import post_licence_invoice
from coop.ledger.verify import ChainReport, canonical_entry_json, check_rows, verify_chain
from tests.support.factories import make_account
from tests.support.ledger import tamper

AT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _post(engine: Engine, postings: list[tuple[str, int]], *, kind: str = "test", memo: str = "m",
          at: datetime = AT) -> PostedEntry:
    with session_scope(engine) as session:
        return post_entry(session, kind=kind, memo=memo, postings=postings, at=at)


def _some_entries(engine: Engine, member_id: str) -> list[PostedEntry]:
    return [
        _post(engine, [(LICENCE_RECEIVABLES, 5000), (LICENCE_INCOME, -5000)], kind="licence-invoice"),
        _post(engine, [(CASH, 5000), (LICENCE_RECEIVABLES, -5000)], kind="licence-payment", memo="café ✓"),
        _post(engine, [(LICENCE_INCOME, 5000), (RESERVE, -1000), (member_account_code(member_id), -4000)],
              kind="dividend"),
        _post(engine, [(member_account_code(member_id), 1500), (CASH, -1500)], kind="payout"),
    ]


@pytest.mark.parametrize("postings", [
    [(CASH, 100), (LICENCE_INCOME, -99)],
    [(CASH, 100)],
    [],
    [(CASH, 0), (LICENCE_INCOME, 0)],
    [(CASH, 100), (LICENCE_INCOME, -100), (RESERVE, 0)],
    [(CASH, 1.5), (LICENCE_INCOME, -1.5)],
    [(CASH, True), (LICENCE_INCOME, -1)],
    [("no-such-account", 100), (CASH, -100)],
    [("member:not-an-account", 100), (CASH, -100)],
])
def test_only_balanced_entries_on_known_accounts_are_posted(engine: Engine, postings: list[tuple[str, int]]) -> None:
    with pytest.raises(InvalidPosting), session_scope(engine) as session:
        post_entry(session, kind="test", memo="bad", postings=postings, at=AT)
    with Session(engine) as session:
        assert session.exec(select(LedgerEntry)).all() == []


def test_entries_chain_from_genesis_and_hash_their_published_content(app: FastAPI, engine: Engine) -> None:
    member = make_account(app, Role.MEMBER)
    entries = _some_entries(engine, member.account_id)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.hash
    second = entries[1]
    document = {"seq": 2, "entry_id": second.entry_id, "at": "2026-03-01T09:30:15.123456Z",
                "kind": "licence-payment", "memo": "café ✓",
                "postings": [{"account": "cash", "amount_pence": 5000},
                             {"account": "licence-receivables", "amount_pence": -5000}]}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert second.hash == hashlib.sha256(entries[0].hash.encode() + canonical).hexdigest()
    report = verify_chain_now(engine)
    assert (report.ok, report.entries, report.head_hash, report.first_bad_seq) == (True, 4, entries[-1].hash, None)


def verify_chain_now(engine: Engine) -> ChainReport:
    with engine.connect() as connection:
        return verify_chain(connection)


def test_every_entry_balances_and_all_balances_sum_to_zero(app: FastAPI, engine: Engine) -> None:
    member = make_account(app, Role.MEMBER)
    _some_entries(engine, member.account_id)
    with Session(engine) as session:
        per_entry = session.exec(select(LedgerPosting.entry_seq, sa.func.sum(LedgerPosting.amount_pence))
                                 .group_by(col(LedgerPosting.entry_seq))).all()
        per_account = dict(session.exec(select(LedgerPosting.account_code, sa.func.sum(LedgerPosting.amount_pence))
                                        .group_by(col(LedgerPosting.account_code))).all())
        member_account = session.get(LedgerAccount, member_account_code(member.account_id))
    assert len(per_entry) == 4 and all(total == 0 for _, total in per_entry)
    assert sum(per_account.values()) == 0
    assert per_account == {CASH: 3500, LICENCE_RECEIVABLES: 0, LICENCE_INCOME: 0, RESERVE: -1000,
                           member_account_code(member.account_id): -2500}
    assert member_account is not None and member_account.type == "liability"


def test_licence_invoice_posts_the_fee_and_nothing_for_a_free_licence(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert post_licence_invoice(session, licence_id="L1", fee_pence=0, at=AT) is None
        entry = post_licence_invoice(session, licence_id="L1", fee_pence=25000, at=AT)
    assert entry is not None
    assert entry.kind == "licence-invoice" and "L1" in entry.memo
    assert entry.postings == ((LICENCE_RECEIVABLES, 25000), (LICENCE_INCOME, -25000))


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entry SET memo = 'edited'",
    "DELETE FROM ledger_entry",
    "UPDATE ledger_posting SET amount_pence = amount_pence * 2",
    "DELETE FROM ledger_posting",
])
def test_the_database_refuses_updates_and_deletes(app: FastAPI, engine: Engine, statement: str) -> None:
    _some_entries(engine, make_account(app, Role.MEMBER).account_id)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text(statement))
    assert verify_chain_now(engine).ok


TAMPERS = [
    ("UPDATE ledger_entry SET memo = 'paid to someone else' WHERE seq = :seq", 2),
    ("UPDATE ledger_entry SET kind = 'payout' WHERE seq = :seq", 3),
    ("UPDATE ledger_entry SET at = :at WHERE seq = :seq", 2),
    ("UPDATE ledger_entry SET prev_hash = :fake WHERE seq = :seq", 3),
    ("UPDATE ledger_entry SET hash = :fake WHERE seq = :seq", 2),
    ("UPDATE ledger_entry SET id = 'another-id' WHERE seq = :seq", 1),
    ("UPDATE ledger_posting SET amount_pence = 4001 WHERE entry_seq = :seq AND line = 3", 3),
    ("UPDATE ledger_posting SET account_code = 'cash' WHERE entry_seq = :seq AND line = 2", 3),
    ("UPDATE ledger_posting SET line = 9 WHERE entry_seq = :seq AND line = 1", 4),
    ("DELETE FROM ledger_posting WHERE entry_seq = :seq AND line = 3", 3),
]


@pytest.mark.parametrize(("statement", "seq"), TAMPERS)
def test_an_edit_of_any_past_row_is_found_at_that_row(app: FastAPI, engine: Engine, statement: str,
                                                      seq: int) -> None:
    _some_entries(engine, make_account(app, Role.MEMBER).account_id)
    tamper(engine, statement, seq=seq, fake="f" * 64, at=datetime(2026, 3, 2, tzinfo=UTC))
    report = verify_chain_now(engine)
    assert report.ok is False
    assert report.first_bad_seq == seq
    assert report.entries == 4


def test_a_time_that_is_not_a_time_is_a_bad_entry_not_a_crash() -> None:
    # Only SQLite would store such text in the ``at`` column; the checker is fed rows directly here.
    row = (1, "id", "not a time", "k", "m", GENESIS_HASH, "0" * 64)
    report = check_rows(iter([row]), iter([(1, CASH, 5), (1, RESERVE, -5)]))
    assert (report.ok, report.first_bad_seq, report.reason) == (
        False, 1, "stored hash does not match the entry's content")


def test_a_removed_entry_is_found_where_the_chain_breaks(app: FastAPI, engine: Engine) -> None:
    _some_entries(engine, make_account(app, Role.MEMBER).account_id)
    tamper(engine, "DELETE FROM ledger_posting WHERE entry_seq = 2")
    tamper(engine, "DELETE FROM ledger_entry WHERE seq = 2")
    report = verify_chain_now(engine)
    assert (report.ok, report.first_bad_seq, report.entries) == (False, 3, 3)


def test_parallel_writers_keep_the_chain_linear(engine: Engine) -> None:
    writers, per_writer = 6, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(writer: int) -> None:
        try:
            start.wait()
            for n in range(per_writer):
                _post(engine, [(CASH, writer * 100 + n + 1), (LICENCE_INCOME, -(writer * 100 + n + 1))],
                      memo=f"writer {writer} entry {n}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as session:
        rows = session.exec(select(LedgerEntry.seq, LedgerEntry.prev_hash, LedgerEntry.hash)
                            .order_by(col(LedgerEntry.seq))).all()
    assert [seq for seq, _, _ in rows] == list(range(1, writers * per_writer + 1))
    assert len({prev for _, prev, _ in rows}) == len(rows)
    assert all(prev == (rows[i - 1][2] if i else GENESIS_HASH) for i, (_, prev, _) in enumerate(rows))
    report = verify_chain_now(engine)
    assert (report.ok, report.entries) == (True, writers * per_writer)


texts = st.text(max_size=40)


@given(seq=st.integers(min_value=1, max_value=2**53), entry_id=texts, at=texts, kind=texts, memo=texts,
       postings=st.lists(st.tuples(texts, st.integers(min_value=-(10**15), max_value=10**15)), max_size=6))
def test_the_fast_canonical_form_is_byte_for_byte_canonical_json(seq: int, entry_id: str, at: str, kind: str,
                                                                 memo: str, postings: list[tuple[str, int]]) -> None:
    expected = canonical_json(entry_document(seq=seq, entry_id=entry_id, at_rfc3339=at, kind=kind, memo=memo,
                                             postings=postings))
    fast = canonical_entry_json(seq=seq, entry_id=entry_id, at=at, kind=kind, memo=memo, postings=postings)
    assert fast.encode("utf-8") == expected
