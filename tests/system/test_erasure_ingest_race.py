"""A batch that arrives while an erasure is committing waits for it and then stores nothing."""

from __future__ import annotations

import threading
import time

from fastapi import FastAPI
from sqlmodel import Session

from coop.accounts.models import Account
from coop.ingest.service import ingest_pings
from coop.kit.db import session_scope
from coop.kit.errors import Forbidden
from coop.rights.erasure import erase_member
from tests.support.ingest import consenting_member, count_all_pings, ping


def test_a_batch_racing_an_erasure_stores_nothing(app: FastAPI) -> None:
    member = consenting_member(app)
    engine, keyring, settings = app.state.engine, app.state.keyring, app.state.settings
    erasing = Session(engine, expire_on_commit=False)
    erase_member(erasing, member_id=member.account_id, keyring=keyring)  # not committed yet
    outcome: list[object] = []

    def send_batch() -> None:
        try:
            with session_scope(engine) as session:
                account = session.get(Account, member.account_id)
                assert account is not None
                outcome.append(ingest_pings(session, account=account, items=[ping("late")], keyring=keyring,
                                            settings=settings))
        except Forbidden as refused:
            outcome.append(refused)

    sender = threading.Thread(target=send_batch)
    sender.start()
    time.sleep(0.5)
    assert sender.is_alive(), "the batch must wait for the erasure's transaction"
    erasing.commit()
    erasing.close()
    sender.join(timeout=30)
    [result] = outcome
    # Refused outright (the key is gone) or dropped by the consent gate (consent was withdrawn first):
    # either way nothing is stored.
    assert isinstance(result, Forbidden) or getattr(result, "accepted", None) == 0
    assert count_all_pings(app) == 0
