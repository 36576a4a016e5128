"""In-process sliding-window rate limits (per token for ingest, per client address for sign-up and for
wrong invitation codes).

Invariant: at most ``limit`` hits per ``window_s`` per key in this process. Workers do not share
counters, so with N workers the effective limit is N times higher (docs/operations.md says so).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from coop.kit.errors import RateLimited


class SlidingWindowLimiter:
    """Counts hits per key over the last ``window_s`` seconds.

    ``hit`` counts and refuses in one step (every request counts). ``check`` and ``record`` split it
    for limits on *failures*: check before the attempt, record only when it failed.
    """

    def __init__(self, *, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, what: str) -> None:
        """Record one hit for ``key``, or raise ``RateLimited`` with the seconds until a slot frees."""
        now = time.monotonic()
        with self._lock:
            hits = self._current(key, now)
            self._refuse_if_full(hits, now, what=what)
            self._append(hits, now)

    def check(self, key: str, *, what: str) -> None:
        """Raise ``RateLimited`` if ``key`` already used every slot of the window; records nothing."""
        now = time.monotonic()
        with self._lock:
            if key in self._hits:  # an unknown key has every slot free (and is not stored)
                self._refuse_if_full(self._current(key, now), now, what=what)

    def record(self, key: str) -> None:
        """Count one hit for ``key`` without refusing anything (a failure already answered)."""
        now = time.monotonic()
        with self._lock:
            self._append(self._current(key, now), now)

    def _current(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        return hits

    def _refuse_if_full(self, hits: deque[float], now: float, *, what: str) -> None:
        if len(hits) >= self.limit:
            retry = math.ceil(hits[0] + self.window_s - now)
            raise RateLimited(f"too many {what}; try again in {retry} s", retry_after_s=retry)

    def _append(self, hits: deque[float], now: float) -> None:
        hits.append(now)
        if len(self._hits) > 100_000:
            self._evict_idle(now)

    def _evict_idle(self, now: float) -> None:
        idle = [key for key, hits in self._hits.items() if not hits or hits[-1] <= now - self.window_s]
        for key in idle:
            del self._hits[key]

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
