"""Candle timeframes: the seed's set, their lengths, and UTC bucket alignment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tradestore.errors import ValidationError


class Timeframe(StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @classmethod
    def parse(cls, value: object, *, field: str = "timeframe") -> Timeframe:
        """The timeframe for "1m" ... "1d" (or a Timeframe); a ValidationError otherwise."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in _BY_VALUE:
            return _BY_VALUE[value]
        allowed = ", ".join(t.value for t in cls)
        raise ValidationError(
            f"{field}: unknown timeframe {value!r} (allowed: {allowed})", field=field, value=value
        )

    @property
    def seconds(self) -> int:
        return _SECONDS[self]

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def pandas_rule(self) -> str:
        """The pandas resample rule of the same length ("5min", "1h", "1D")."""
        return _PANDAS[self]

    def bucket_start(self, ts: datetime) -> datetime:
        """Start of the UTC-aligned candle holding ts (epoch-aligned; every timeframe
        divides a day, so this is also midnight-aligned)."""
        epoch = int(ts.timestamp()) // self.seconds * self.seconds
        return datetime.fromtimestamp(epoch, UTC)

    def is_aligned(self, ts: datetime) -> bool:
        return ts.microsecond == 0 and int(ts.timestamp()) % self.seconds == 0


_SECONDS = {
    Timeframe.M1: 60,
    Timeframe.M5: 300,
    Timeframe.M15: 900,
    Timeframe.M30: 1800,
    Timeframe.H1: 3600,
    Timeframe.H4: 14_400,
    Timeframe.D1: 86_400,
}

_PANDAS = {
    Timeframe.M1: "1min",
    Timeframe.M5: "5min",
    Timeframe.M15: "15min",
    Timeframe.M30: "30min",
    Timeframe.H1: "1h",
    Timeframe.H4: "4h",
    Timeframe.D1: "1D",
}

_BY_VALUE = {t.value: t for t in Timeframe}
