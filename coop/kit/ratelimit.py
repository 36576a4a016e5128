"""In-process sliding-window rate limits (per token for ingest, per client address for sign-up).

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
    """Counts hits per key over the last ``window_s`` seconds."""

    def __init__(self, *, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, what: str) -> None:
        """Record one hit for ``key``, or raise ``RateLimited`` with the seconds until a slot frees."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                retry = math.ceil(hits[0] + self.window_s - now)
                raise RateLimited(f"too many {what}; try again in {retry} s", retry_after_s=retry)
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
