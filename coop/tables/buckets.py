"""Which buckets of a family are due, and how they are grouped into sealing chunks (pure).

Invariants: buckets are UTC-aligned (hours on the hour, days at midnight, weeks from Monday midnight)
and start at the family's ``seal_from``; a bucket is due once it ended at least the lateness ago; a
chunk is the unit of one sealing transaction: one bucket for day and week families, the due hours of
one UTC day for hour families (fast, and still one ``sealed_bucket`` row per bucket).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from aggregation.periods import TimeBucket

_LENGTH = {TimeBucket.HOUR: timedelta(hours=1), TimeBucket.DAY: timedelta(days=1),
           TimeBucket.WEEK: timedelta(days=7)}


def bucket_length(time_bucket: str) -> timedelta:
    return _LENGTH[TimeBucket(time_bucket)]


def first_bucket(time_bucket: str, seal_from: date) -> datetime:
    """The start of the first bucket sealed: midnight of ``seal_from`` (its Monday for weeks)."""
    day = seal_from - timedelta(days=seal_from.weekday()) if TimeBucket(time_bucket) is TimeBucket.WEEK \
        else seal_from
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def contribution_day(time_bucket: str, bucket_start: datetime) -> date:
    """The UTC day a bucket's input is recorded on (a week bucket: its Monday, which is its start)."""
    return bucket_start.astimezone(UTC).date()


def due_buckets(*, time_bucket: str, seal_from: date, through: datetime,
                sealed: Iterable[datetime]) -> Iterator[datetime]:
    """Starts of the buckets that ended at or before ``through`` and are not in ``sealed``, oldest first."""
    length = bucket_length(time_bucket)
    done = {start.astimezone(UTC) for start in sealed}
    start = first_bucket(time_bucket, seal_from)
    while start + length <= through:
        if start not in done:
            yield start
        start += length


@dataclass(frozen=True)
class Chunk:
    """Buckets sealed in one transaction: consecutive, of one family, within one UTC day (or one week)."""

    starts: tuple[datetime, ...]
    length: timedelta

    @property
    def start(self) -> datetime:
        return self.starts[0]

    @property
    def end(self) -> datetime:
        return self.starts[-1] + self.length


def chunks(time_bucket: str, starts: Iterable[datetime]) -> Iterator[Chunk]:
    """Due bucket starts grouped into transactions: hours by UTC day, days and weeks one by one."""
    length = bucket_length(time_bucket)
    if TimeBucket(time_bucket) is not TimeBucket.HOUR:
        for start in starts:
            yield Chunk(starts=(start,), length=length)
        return
    run: list[datetime] = []
    for start in starts:
        if run and (start.date() != run[0].date() or start != run[-1] + length):
            yield Chunk(starts=tuple(run), length=length)
            run = []
        run.append(start)
    if run:
        yield Chunk(starts=tuple(run), length=length)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(moment: datetime) -> int:
    """Whole epoch milliseconds of an aware datetime (exact: no float)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)
