"""The sealing loop of ``coop serve``: one background thread calling ``seal_due`` every interval.

Invariants: at most one pass runs at a time per process (several processes are safe: sealing is
idempotent and the ``sealed_bucket`` key decides races); a failing pass is logged and retried at the
next interval, never fatal; ``stop`` wakes the thread and waits for the pass in flight to finish.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from coop.kit.settings import Settings
from coop.tables.sealing import seal_due

log = logging.getLogger("coop.tables")


class SealingLoop:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sealing-loop", daemon=True)
        self.passes = 0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run a pass now (e.g. after a family opened) instead of at the next interval."""
        self._wake.set()

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                seal_due(self.engine, self.settings, keep_going=lambda: not self._stop.is_set())
            except Exception:  # the database may be down; the next pass retries
                log.exception("sealing pass failed; retrying in %.0f s", self.settings.seal_interval_s)
            self.passes += 1
            self._wake.wait(self.settings.seal_interval_s)
            self._wake.clear()
