"""The app's release-build worker: one background thread, so a request that queues a build returns at once.

Invariants: builds run one at a time per process, each in its own sessions; ``wait_for_builds`` returns
only when every build submitted so far has finished (tests use it to wait deterministically); on start,
releases left ``building`` by a crashed process become ``failed`` (a failed release never blocks a rebuild
of its period) and releases still ``queued`` are submitted again (claiming makes a double submit harmless).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from coop.kit.db import session_scope
from coop.releases.builder import BuildContext, build_release
from coop.releases.models import Release

INTERRUPTED = "the build was interrupted (the server stopped); request the period again"


class ReleaseWorker:
    def __init__(self, context: BuildContext) -> None:
        self.context = context
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="release-build")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, release_id: str) -> None:
        future = self._executor.submit(build_release, self.context, release_id)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait_for_builds(self, timeout_s: float | None = None) -> None:
        """Block until every build submitted so far has finished."""
        while True:
            with self._lock:
                pending = set(self._pending)
            if not pending:
                return
            wait(pending, timeout=timeout_s)
            if timeout_s is not None:
                return

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def recover_interrupted_builds(engine: Engine) -> list[str]:
    """Fail the releases left ``building``; return the ids still ``queued`` (to submit again)."""
    with session_scope(engine) as session:
        session.execute(sa.update(Release).where(col(Release.status) == "building")
                        .values(status="failed", error=INTERRUPTED))
        queued = session.exec(select(Release.id).where(col(Release.status) == "queued")
                              .order_by(col(Release.created_at), col(Release.id))).all()
    return list(queued)
