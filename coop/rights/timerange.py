"""The ``start``/``end`` query parameters: RFC 3339 (an offset is required) or epoch seconds.

Invariants: ``start`` is inclusive and ``end`` exclusive; both become whole epoch milliseconds by
rounding up (pings are stored at millisecond precision, so ``ts >= x`` and ``ts < x`` keep their
meaning exactly); anything else (no offset, not a number, out of range, ``end`` before ``start``) is
``InvalidInput`` (422), never a server error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from coop.kit.errors import InvalidInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_SECONDS = re.compile(r"^-?[0-9]{1,12}(\.[0-9]{1,9})?$")
MAX_ABS_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z: the largest instant RFC 3339 can write."""


@dataclass(frozen=True)
class TimeRange:
    """``start_ms <= ts_ms < end_ms``; ``None`` leaves that side open."""

    start_ms: int | None = None
    end_ms: int | None = None


def _invalid(field: str, why: str) -> InvalidInput:
    return InvalidInput(f"{field}: {why}", errors=[{"loc": ["query", field], "msg": why, "type": "value_error"}])


def instant_ms(text: str, *, field: str) -> int:
    """Epoch milliseconds (rounded up) of an RFC 3339 time with an offset, or of epoch seconds."""
    value = text.strip()
    if _EPOCH_SECONDS.match(value):
        try:
            seconds = Decimal(value)
        except InvalidOperation as exc:  # unreachable after the pattern, kept as a guard
            raise _invalid(field, "not a number of seconds") from exc
        if abs(seconds) > MAX_ABS_SECONDS:
            raise _invalid(field, "epoch seconds out of range")
        return math.ceil(seconds * 1000)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _invalid(field, "expected RFC 3339 (e.g. 2026-11-21T09:00:00Z) or epoch seconds") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None or "T" not in value.upper():
        raise _invalid(field, "an RFC 3339 time needs a date, a time and an offset (Z or +01:00)")
    try:
        delta = parsed - _EPOCH
    except OverflowError as exc:
        raise _invalid(field, "time out of range") from exc
    microseconds = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -((-microseconds) // 1000)  # ceiling division


def parse_time_range(start: str | None, end: str | None) -> TimeRange:
    """The range given by the query parameters; 422 on an invalid value or ``end < start``."""
    start_ms = instant_ms(start, field="start") if start else None
    end_ms = instant_ms(end, field="end") if end else None
    if start_ms is not None and end_ms is not None and end_ms < start_ms:
        raise _invalid("end", "end must not be before start")
    return TimeRange(start_ms=start_ms, end_ms=end_ms)
