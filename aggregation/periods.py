"""Time buckets and release periods (pure: no database, no web framework).

Invariants: buckets are UTC-aligned; an hour bucket starts on the hour, a day bucket at midnight UTC,
a week bucket at midnight UTC on a Monday; a period ``[start, end)`` is made of whole buckets. Times in
the maths are epoch milliseconds (UTC), as stored in ``ping.ts_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS


class TimeBucket(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"

    @property
    def length_ms(self) -> int:
        return {TimeBucket.HOUR: HOUR_MS, TimeBucket.DAY: DAY_MS, TimeBucket.WEEK: WEEK_MS}[self]

    @property
    def cells_per_member(self) -> int:
        """L: the most cells one member may count in per bucket (contribution bounding)."""
        return {TimeBucket.HOUR: 1, TimeBucket.DAY: 3, TimeBucket.WEEK: 5}[self]


def date_ms(day: date) -> int:
    """Epoch milliseconds of midnight UTC at the start of ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def ms_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def is_aligned(day: date, bucket: TimeBucket) -> bool:
    """Every date starts an hour and a day bucket; a week bucket starts on a Monday."""
    return bucket is not TimeBucket.WEEK or day.weekday() == 0


@dataclass(frozen=True)
class Period:
    """A release period ``[start, end)`` in whole dates (UTC)."""

    start: date
    end: date

    @property
    def start_ms(self) -> int:
        return date_ms(self.start)

    @property
    def end_ms(self) -> int:
        return date_ms(self.end)

    def overlaps(self, other: Period) -> bool:
        return self.start < other.end and other.start < self.end

    def within(self, outer: Period) -> bool:
        return outer.start <= self.start and self.end <= outer.end

    def bucket_count(self, bucket: TimeBucket) -> int:
        return (self.end_ms - self.start_ms) // bucket.length_ms
