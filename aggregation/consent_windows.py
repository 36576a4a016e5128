"""Consent windows: when a member's pings may count for one purpose (pure: no database).

Invariants: a ping at time t counts only if the member's latest event for the purpose at or before t is
``given`` (so t lies in a window ``[given_at, next withdrawal)``) AND the member's latest event overall
is still ``given`` when the release is built. A member who has withdrawn gets no window at all, so
withdrawing removes every earlier ping from every later release. Windows are half-open, disjoint,
sorted, and clipped to the release period; events with the same time are ordered withdrawal last, so a
tie never widens a window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

GIVEN, WITHDRAWN = "given", "withdrawn"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class ConsentChange:
    """One event of a member's consent log for one purpose."""

    at: datetime
    state: str


@dataclass(frozen=True)
class Window:
    """Pings with ``start_ms <= ts_ms < end_ms`` count."""

    start_ms: int
    end_ms: int


def ceil_ms(moment: datetime) -> int:
    """The first whole millisecond at or after ``moment`` (so ``ts_ms >= ceil_ms(at)`` iff ``ts >= at``)."""
    delta = moment.astimezone(UTC) - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-micros // 1000)


def consent_windows(changes: Iterable[ConsentChange], *, start_ms: int, end_ms: int) -> list[Window]:
    """The windows in ``[start_ms, end_ms)`` where pings count; empty unless the latest change is ``given``."""
    ordered = sorted(changes, key=lambda c: (c.at, c.state == WITHDRAWN))
    if not ordered or ordered[-1].state != GIVEN:
        return []
    windows: list[Window] = []
    open_from: int | None = None
    for change in ordered:
        moment = ceil_ms(change.at)
        if change.state == GIVEN and open_from is None:
            open_from = moment
        elif change.state == WITHDRAWN and open_from is not None:
            windows.append(Window(open_from, moment))
            open_from = None
    if open_from is not None:
        windows.append(Window(open_from, end_ms))
    clipped = [Window(max(w.start_ms, start_ms), min(w.end_ms, end_ms)) for w in windows]
    return [w for w in clipped if w.start_ms < w.end_ms]
