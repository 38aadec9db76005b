"""Candle timeframes: the seed's set, their lengths, and UTC bucket alignment.

Stored timeframes (1m .. 1d) have fixed lengths and buckets aligned on the Unix epoch
(every one divides a day, so buckets also start at midnight UTC). Two calendar
timeframes are derived only, never stored: `1w` (weeks from Monday 00:00 UTC) and `1M`
(months from the 1st, 00:00 UTC), the anchors of pandas' `W-MON`-style and `MS` rules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from tradestore.errors import ValidationError

if TYPE_CHECKING:
    from psycopg import sql

MONDAY_EPOCH = datetime(1970, 1, 5, tzinfo=UTC)  # the first Monday after the Unix epoch


class Timeframe(StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"
    W1 = "1w"
    MO1 = "1M"

    @classmethod
    def parse(cls, value: object, *, field: str = "timeframe") -> Timeframe:
        """The timeframe for "1m" ... "1M" (or a Timeframe); a ValidationError otherwise."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in _BY_VALUE:
            return _BY_VALUE[value]
        allowed = ", ".join(t.value for t in cls)
        raise ValidationError(
            f"{field}: unknown timeframe {value!r} (allowed: {allowed})", field=field, value=value
        )

    @classmethod
    def parse_stored(cls, value: object, *, field: str = "timeframe") -> Timeframe:
        """A timeframe candles can be stored in (1m .. 1d)."""
        tf = cls.parse(value, field=field)
        if tf.is_calendar:
            stored = ", ".join(t.value for t in cls if not t.is_calendar)
            raise ValidationError(
                f"{field}: {tf.value} candles are derived from 1d (or finer) candles, not "
                f"stored: store {stored}",
                field=field,
                value=value,
            )
        return tf

    @property
    def is_calendar(self) -> bool:
        """1w and 1M: derived only, with calendar anchors."""
        return self in (Timeframe.W1, Timeframe.MO1)

    @property
    def seconds(self) -> int:
        """The length (1M: a nominal 30 days; use bucket_start/next_start for months)."""
        return _SECONDS[self]

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def pandas_rule(self) -> str:
        """The pandas resample rule of the same buckets ("5min", "1h", "1D", "MS")."""
        return _PANDAS[self]

    def divides(self, coarser: Timeframe) -> bool:
        """Whether whole buckets of self make up each bucket of `coarser`."""
        if self.is_calendar:
            return False
        if coarser is Timeframe.MO1:
            return Timeframe.D1.seconds % self.seconds == 0
        return coarser.seconds > self.seconds and coarser.seconds % self.seconds == 0

    def bucket_start(self, ts: datetime) -> datetime:
        """Start of the UTC-aligned candle holding ts."""
        if self is Timeframe.MO1:
            utc = ts.astimezone(UTC)
            return datetime(utc.year, utc.month, 1, tzinfo=UTC)
        origin = MONDAY_EPOCH if self is Timeframe.W1 else datetime(1970, 1, 1, tzinfo=UTC)
        offset = int((ts - origin).total_seconds()) // self.seconds * self.seconds
        return origin + timedelta(seconds=offset)

    def next_start(self, bucket: datetime) -> datetime:
        """The start of the bucket after the one starting at `bucket`."""
        if self is Timeframe.MO1:
            year, month = divmod(bucket.month, 12)
            return bucket.replace(year=bucket.year + year, month=month + 1)
        return bucket + self.delta

    def bucket_sql(self, column: sql.Composable) -> sql.Composable:
        """SQL of the start of the bucket holding `column` (a timestamptz)."""
        from psycopg import sql  # here: the CLI reads timeframes without loading psycopg

        if self is Timeframe.MO1:
            return sql.SQL(
                "(date_trunc('month', {} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
            ).format(column)
        origin = MONDAY_EPOCH if self is Timeframe.W1 else datetime(1970, 1, 1, tzinfo=UTC)
        return sql.SQL("date_bin({}, {}, {})").format(
            sql.Literal(self.delta), column, sql.Literal(origin)
        )

    def is_aligned(self, ts: datetime) -> bool:
        return ts.microsecond == 0 and self.bucket_start(ts) == ts


_SECONDS = {
    Timeframe.M1: 60,
    Timeframe.M5: 300,
    Timeframe.M15: 900,
    Timeframe.M30: 1800,
    Timeframe.H1: 3600,
    Timeframe.H4: 14_400,
    Timeframe.D1: 86_400,
    Timeframe.W1: 604_800,
    Timeframe.MO1: 2_592_000,
}

_PANDAS = {
    Timeframe.M1: "1min",
    Timeframe.M5: "5min",
    Timeframe.M15: "15min",
    Timeframe.M30: "30min",
    Timeframe.H1: "1h",
    Timeframe.H4: "4h",
    Timeframe.D1: "1D",
    Timeframe.W1: "W-MON",
    Timeframe.MO1: "MS",
}

_BY_VALUE = {t.value: t for t in Timeframe}
