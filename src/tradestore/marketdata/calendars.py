"""Market hours for gap detection: which candles a market should have.

- `24/7` (the default): crypto; every candle is expected.
- `fx`: spot FX, closed from Friday 22:00 to Sunday 22:00 UTC every week.
- an exchange code such as `XNYS` or `XLON`: the sessions of that exchange, holidays
  and early closes included, from the maintained `exchange_calendars` library (the
  optional extra `pip install 'tradestore[calendars]'`).

A candle [t, t + timeframe) is expected when the market is open at any moment in it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tradestore.errors import ConfigurationError, ValidationError
from tradestore.timeframes import MONDAY_EPOCH, Timeframe

WEEK_US = 7 * 86_400 * 1_000_000
FX_CLOSE_US = (4 * 86_400 + 22 * 3600) * 1_000_000  # Friday 22:00, from Monday 00:00
FX_OPEN_US = (6 * 86_400 + 22 * 3600) * 1_000_000  # Sunday 22:00
MONDAY_US = int(MONDAY_EPOCH.timestamp()) * 1_000_000


class MarketHours(Protocol):
    name: str

    def expected(self, starts_us: npt.NDArray[np.int64], tf: Timeframe) -> npt.NDArray[np.bool_]:
        """For candles starting at `starts_us` (Unix µs): whether each is expected."""
        ...


class AlwaysOpen:
    name = "24/7"

    def expected(self, starts_us: npt.NDArray[np.int64], tf: Timeframe) -> npt.NDArray[np.bool_]:
        return np.ones(len(starts_us), dtype=bool)


class ForexHours:
    name = "fx"

    def expected(self, starts_us: npt.NDArray[np.int64], tf: Timeframe) -> npt.NDArray[np.bool_]:
        position = (starts_us - MONDAY_US) % WEEK_US
        closed = (position >= FX_CLOSE_US) & (position + tf.seconds * 1_000_000 <= FX_OPEN_US)
        return np.asarray(~closed)


class ExchangeHours:
    """Sessions of an exchange from exchange_calendars (minutes for intraday candles)."""

    def __init__(self, code: str) -> None:
        try:
            library: Any = importlib.import_module("exchange_calendars")
        except ImportError:
            raise ConfigurationError(
                f"calendar {code!r} needs exchange_calendars: pip install 'tradestore[calendars]'"
            ) from None
        try:
            with _quiet():
                self.calendar = library.get_calendar(code)
        except library.errors.InvalidCalendarName:
            raise ValidationError(
                f"unknown calendar {code!r}: use 24/7, fx, or an exchange code such as XNYS",
                field="calendar",
                value=code,
            ) from None
        self.name = code

    def expected(self, starts_us: npt.NDArray[np.int64], tf: Timeframe) -> npt.NDArray[np.bool_]:
        if not len(starts_us):
            return np.zeros(0, dtype=bool)
        with _quiet():
            return self._expected(starts_us, tf)

    def _expected(self, starts_us: npt.NDArray[np.int64], tf: Timeframe) -> npt.NDArray[np.bool_]:
        first, last = _utc(int(starts_us.min())), _utc(int(starts_us.max()))
        if tf.seconds >= 86_400:
            sessions = self.calendar.sessions_in_range(first.date(), last.date())
            days = np.asarray(sessions.values.astype("datetime64[D]").astype(np.int64))
            return np.isin(starts_us // (86_400 * 1_000_000), days)
        minutes = self.calendar.minutes_in_range(first, _utc(int(starts_us.max()) + tf_us(tf)))
        open_us = np.asarray(minutes.asi8 // 1000, dtype=np.int64)
        ends = starts_us + tf_us(tf)
        return np.asarray(np.searchsorted(open_us, starts_us) < np.searchsorted(open_us, ends))


@contextmanager
def _quiet() -> Iterator[None]:
    """exchange_calendars' own deprecation warnings about pandas are not the user's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def tf_us(tf: Timeframe) -> int:
    return tf.seconds * 1_000_000


def _utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def market_hours(name: str | None) -> MarketHours:
    if name is None or name.lower() in ("24/7", "crypto", "always"):
        return AlwaysOpen()
    if name.lower() in ("fx", "forex"):
        return ForexHours()
    return ExchangeHours(name.upper())
