"""Racing clients for the concurrency tests: each call runs in its own thread with its own TestClient
(so its own request, session and connection) against one app and database, released together by a
barrier. Bounded: a fixed list of calls, each answered or failed within the client's timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support.figures import count


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


def race(app: FastAPI, calls: Sequence[Call], *, section: str) -> list[Answer]:
    """Send every call at once (one thread and client each); answers in the order of ``calls``."""
    barrier = threading.Barrier(len(calls))

    def send(call: Call) -> Answer:
        own_client = TestClient(app, raise_server_exceptions=False)
        barrier.wait(timeout=30)
        response = own_client.request(call.method, call.path, json=call.json,
                                      headers={**call.headers, **call.extra_headers})
        body = response.json() if response.content else None
        return Answer(response.status_code, body)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        answers = list(pool.map(send, calls))
    count(section, "racing requests", len(calls))
    count(section, "races", 1)
    assert all(answer.status < 500 for answer in answers), answers
    return answers
