"""Verified-membership benchmarks: what an invitation code adds to a sign-up, how fast codes are issued,
and what the ``countable_member_ids`` filter costs a query over many accounts.

    .venv/bin/python bench/membership.py                  # a temporary SQLite database
    COOP_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/coop_bench_members \\
        .venv/bin/python bench/membership.py              # an empty PostgreSQL database you own

Prints figures, as ratios against a baseline measured in the same run; asserts nothing about time.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import col

from coop.accounts.invitations import issue_invitations
from coop.accounts.models import Account
from coop.accounts.service import countable_member_ids, sign_up_member
from coop.kit.crypto import b64url, load_keyring
from coop.kit.db import make_engine, session_scope
from coop.kit.migrate import upgrade_to_head
from coop.kit.settings import Settings

SIGN_UPS = 300
ISSUE_CALLS = 10
ACCOUNTS = 100_000
RUNS = 5
TERMS = "2026-11"


def _median_ms(action: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def bench_issue(engine: Engine, admin_id: str) -> list[str]:
    codes: list[str] = []
    began = time.perf_counter()
    for _ in range(ISSUE_CALLS):
        with session_scope(engine) as session:
            codes += issue_invitations(session, created_by=admin_id, count=1000, note="bench").codes
    elapsed = time.perf_counter() - began
    print(f"issue: {len(codes):,} codes in calls of 1,000, {len(codes) / elapsed:,.0f} codes/s")
    return codes


def bench_sign_up(engine: Engine, settings: Settings, codes: list[str]) -> None:
    keyring = load_keyring(settings)

    def sign_ups(with_codes: bool) -> float:
        began = time.perf_counter()
        for _ in range(SIGN_UPS):
            with session_scope(engine) as session:
                sign_up_member(session, display_name=None, accept_terms_version=TERMS, current_terms_version=TERMS,
                               keyring=keyring, invitation_code=codes.pop() if with_codes else None)
        return SIGN_UPS / (time.perf_counter() - began)

    sign_ups(False)  # warm up
    plain = statistics.median(sign_ups(False) for _ in range(3))
    coded = statistics.median(sign_ups(True) for _ in range(3))
    print(f"sign-up (service, one transaction each): without a code {plain:,.0f}/s, with a code {coded:,.0f}/s "
          f"(ratio {coded / plain:.2f})")


def bench_countable(engine: Engine, settings: Settings) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(sa.insert(Account), [
            {"id": str(uuid.uuid4()), "roles": ["member"], "created_at": now, "collection_paused": False,
             "verified_at": now if n % 10 else None, "erased_at": now if n % 97 == 0 else None}
            for n in range(ACCOUNTS)])

    def count(query: sa.Select[str]) -> int:
        with engine.connect() as connection:
            found: int = connection.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
            return found

    baseline = sa.select(col(Account.id)).where(col(Account.erased_at).is_(None))
    countable = countable_member_ids(settings)
    base_ms = _median_ms(lambda: count(baseline))
    countable_ms = _median_ms(lambda: count(countable))
    print(f"countable_member_ids over {ACCOUNTS:,} accounts: {count(countable):,} countable of "
          f"{count(baseline):,} not erased; {countable_ms:.1f} ms vs {base_ms:.1f} ms for 'not erased' alone "
          f"(ratio {countable_ms / base_ms:.2f})")


def main() -> None:
    url = os.environ.get("COOP_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory() as scratch:
        url = url or f"sqlite:///{Path(scratch) / 'bench.db'}"
        settings = Settings(database_url=url, data_dir=Path(scratch), master_key=SecretStr(b64url(os.urandom(32))),
                            signing_key=SecretStr(b64url(os.urandom(32))), terms_version=TERMS)
        upgrade_to_head(url)
        engine = make_engine(url)
        try:
            print(f"database: {engine.dialect.name}")
            admin_id = str(uuid.uuid4())
            with engine.begin() as connection:
                connection.execute(sa.insert(Account), [{"id": admin_id, "roles": ["admin"],
                                                         "created_at": datetime.now(UTC), "collection_paused": False}])
            codes = bench_issue(engine, admin_id)
            bench_sign_up(engine, settings, codes)
            bench_countable(engine, settings)
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
