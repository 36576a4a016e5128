"""Ledger benchmarks: chain verification speed and dividend allocation over many members.

    .venv/bin/python bench/ledger.py                      # a temporary SQLite database
    COOP_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/coop_bench_ledger \\
        .venv/bin/python bench/ledger.py                  # an empty PostgreSQL database you own

Prints figures; asserts nothing about time (design.md target: verification >= 50,000 entries/s).
The database must have an empty ledger: the script migrates it and fills it with synthetic rows.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from coop.accounts.models import Account, MemberKey
from coop.kit.db import make_engine, session_scope
from coop.kit.migrate import upgrade_to_head
from coop.kit.timeutil import rfc3339
from coop.ledger.allocation import allocate_largest_remainder
from coop.ledger.chart import CASH, LICENCE_INCOME, LICENCE_RECEIVABLES, RESERVE, member_account_code
from coop.ledger.dividends import declare_dividend
from coop.ledger.journal import GENESIS_HASH, entry_document, entry_hash
from coop.ledger.models import LedgerAccount, LedgerEntry, LedgerPosting
from coop.ledger.verify import verify_chain
from coop.licensing.models import Licence, LicencePayment, LicenceRequest
from coop.releases.models import Release, ReleaseContribution

ENTRIES = 100_000
MEMBERS = 100_000
LEDGER_MEMBERS = 200
BATCH = 5_000
RUNS = 3


def _synthetic_postings(rng: random.Random, n: int) -> list[tuple[str, int]]:
    amount = rng.randint(10, 50_000)
    kind = n % 4
    if kind == 0:
        return [(LICENCE_RECEIVABLES, amount), (LICENCE_INCOME, -amount)]
    if kind == 1:
        return [(CASH, amount), (LICENCE_RECEIVABLES, -amount)]
    if kind == 2:
        reserve = amount // 5
        a, b = rng.sample(range(LEDGER_MEMBERS), 2)
        first = (amount - reserve) // 2
        return [(LICENCE_INCOME, amount), (RESERVE, -reserve), (member_account_code(f"bench-{a}"), -first),
                (member_account_code(f"bench-{b}"), -(amount - reserve - first))]
    return [(member_account_code(f"bench-{rng.randrange(LEDGER_MEMBERS)}"), amount), (CASH, -amount)]


def fill_ledger(engine: Engine, entries: int) -> None:
    """``entries`` valid, hash-chained entries inserted in bulk (the same hashing as ``post_entry``)."""
    rng = random.Random(8)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(sa.insert(LedgerAccount), [
            {"code": member_account_code(f"bench-{i}"), "name": f"bench member {i}", "type": "liability"}
            for i in range(LEDGER_MEMBERS)])
        prev = GENESIS_HASH
        entry_rows: list[dict[str, object]] = []
        posting_rows: list[dict[str, object]] = []
        for seq in range(1, entries + 1):
            at = start + timedelta(seconds=seq, microseconds=rng.randrange(1_000_000))
            postings = _synthetic_postings(rng, seq)
            entry_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            kind, memo = f"bench-{seq % 4}", f"synthetic entry {seq}"
            digest = entry_hash(prev, entry_document(seq=seq, entry_id=entry_id, at_rfc3339=rfc3339(at),
                                                     kind=kind, memo=memo, postings=postings))
            entry_rows.append({"seq": seq, "id": entry_id, "at": at, "kind": kind, "memo": memo,
                               "prev_hash": prev, "hash": digest})
            posting_rows.extend({"entry_seq": seq, "line": line, "account_code": account, "amount_pence": amount}
                                for line, (account, amount) in enumerate(postings, start=1))
            prev = digest
            if len(entry_rows) >= BATCH or seq == entries:
                connection.execute(sa.insert(LedgerEntry), entry_rows)
                connection.execute(sa.insert(LedgerPosting), posting_rows)
                entry_rows, posting_rows = [], []


def bench_verify(engine: Engine) -> None:
    rates = []
    for _ in range(RUNS):
        with engine.connect() as connection:
            began = time.perf_counter()
            report = verify_chain(connection)
            elapsed = time.perf_counter() - began
        assert report.ok and report.entries == ENTRIES, report
        rates.append(report.entries / elapsed)
    print(f"verify: {ENTRIES:,} entries, median {statistics.median(rates):,.0f} entries/s "
          f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}; target >= 50,000)")


def bench_allocation() -> None:
    rng = random.Random(9)
    weights = {str(uuid.UUID(int=rng.getrandbits(128), version=4)): rng.randint(1, 500) for _ in range(MEMBERS)}
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        shares = allocate_largest_remainder(123_456_789, weights)
        times.append(time.perf_counter() - began)
        assert sum(shares.values()) == 123_456_789
    print(f"allocate_largest_remainder: {MEMBERS:,} members, median {statistics.median(times) * 1000:.0f} ms")


def bench_declare(engine: Engine) -> None:
    """A whole dividend declaration (queries, allocation, one entry of ~100k postings, allocation rows)."""
    rng = random.Random(10)
    now = datetime.now(UTC)
    built = now - timedelta(days=5)
    modeller, request_id, licence_id, release_id = (str(uuid.uuid4()) for _ in range(4))
    accounts = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(MEMBERS)]
    with engine.begin() as connection:
        connection.execute(sa.insert(Account), [
            {"id": a, "roles": ["member"], "created_at": now, "collection_paused": False} for a in [modeller, *accounts]])
        connection.execute(sa.insert(MemberKey), [
            {"no": n, "account_id": a, "created_at": now} for n, a in enumerate(accounts, start=1)])
        connection.execute(sa.insert(LicenceRequest), [{
            "id": request_id, "requester_id": modeller, "title": "t", "purpose_code": "transport-planning",
            "organisation": "o", "public_benefit": "b", "description": "d", "dataset": {}, "duration_days": 30,
            "fee_pence": 10**9, "status": "approved", "created_at": now}])
        connection.execute(sa.insert(Licence), [{
            "id": licence_id, "request_id": request_id, "licensee_id": modeller, "organisation": "o",
            "purpose_code": "transport-planning", "dataset": {}, "k": 2, "fee_pence": 10**9, "paid_pence": 10**8,
            "valid_from": now, "valid_until": now, "terms_version": "t", "document": {}, "jws": "j",
            "created_at": now}])
        connection.execute(sa.insert(LicencePayment), [{
            "id": str(uuid.uuid4()), "licence_id": licence_id, "amount_pence": 10**8, "reference": "bench",
            "received_at": built, "recorded_by": modeller}])
        connection.execute(sa.insert(Release), [{
            "id": release_id, "licence_id": licence_id, "requested_by": modeller, "start": date(2026, 1, 1),
            "end": date(2026, 1, 2), "status": "ready", "progress": 1.0, "created_at": built, "built_at": built}])
        connection.execute(sa.insert(ReleaseContribution), [
            {"release_id": release_id, "member_no": n, "units": rng.randint(1, 40)}
            for n in range(1, MEMBERS + 1)])
    began = time.perf_counter()
    with session_scope(engine) as session:
        dividend = declare_dividend(session, period_start=built.date() - timedelta(days=1),
                                    period_end=built.date() + timedelta(days=1), reserve_bps=2000,
                                    declared_by=modeller)
    elapsed = time.perf_counter() - began
    assert dividend.members == MEMBERS
    print(f"declare_dividend: {MEMBERS:,} members, {elapsed:.1f} s end to end "
          f"(pool {dividend.pool_pence:,} p, distributed {dividend.distributed_pence:,} p)")


def main() -> int:
    url = os.environ.get("COOP_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite:///{tmp}/bench-ledger.db"
        upgrade_to_head(url)
        engine = make_engine(url)
        with engine.connect() as connection:
            if connection.execute(sa.text("SELECT count(*) FROM ledger_entry")).scalar_one():
                print("bench/ledger.py needs a database with an empty ledger", file=sys.stderr)
                return 2
        print(f"database: {engine.dialect.name}")
        began = time.perf_counter()
        fill_ledger(engine, ENTRIES)
        print(f"setup: {ENTRIES:,} synthetic entries inserted in {time.perf_counter() - began:.1f} s")
        bench_verify(engine)
        bench_allocation()
        bench_declare(engine)
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
