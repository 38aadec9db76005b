"""Row checks of a candle chunk, vectorised: each rejected row gets its reason."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from tradestore.errors import ValidationError, shown
from tradestore.marketdata.inputs import Chunk, chunks
from tradestore.symbols import RULE, is_symbol
from tradestore.timeframes import Timeframe


@dataclass(frozen=True)
class TimeWindow:
    """Candle times accepted: from `earliest` to `max_future` after now (Settings
    candle_earliest, candle_max_future_s)."""

    earliest: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    max_future: timedelta = timedelta(days=1)

    def bounds_us(self) -> tuple[int, int]:
        latest = datetime.now(UTC) + self.max_future
        return _unix_us(self.earliest), _unix_us(latest)


def _unix_us(when: datetime) -> int:
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


VENUE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,19}$")


def check_venue(venue: str) -> str:
    """A venue: the exchange's lower-case id (dydx, binance, coinbase, ...)."""
    if not isinstance(venue, str) or not VENUE_RE.match(venue):
        raise ValidationError(
            f"venue: {shown(venue)} is not a venue (a lower-case exchange id like dydx or "
            "binance, at most 20 characters)",
            field="venue",
            value=venue,
        )
    return venue


def series_key(venue: str, symbol: str, timeframe: str) -> str:
    """The series' name in locks and logs: venue|symbol|timeframe."""
    return f"{venue}|{symbol}|{timeframe}"


# Writers of one series (ingest, deletion, compaction) take turns on this lock, held to
# the end of their transaction; bound with series_key(...).
LOCK_SERIES = "SELECT pg_advisory_xact_lock(hashtext('tradestore.md'), hashtext(%s))"


def check_symbol(symbol: str) -> str:
    if not is_symbol(symbol):
        raise ValidationError(
            f"symbol: {shown(symbol)} is not a market symbol ({RULE})",
            field="symbol",
            value=symbol,
        )
    return symbol


def validate_chunk(
    chunk: Chunk, symbol: str, timeframe: Timeframe, window: TimeWindow | None = None
) -> None:
    """Add a reason to `chunk.rejected` for every row that must not be stored (the
    first reason found is the one kept: the row's identity before its values)."""
    _check_labels(chunk, chunk.symbols, symbol, "symbol")
    _check_labels(chunk, chunk.timeframes, timeframe.value, "timeframe")
    window = window or TimeWindow()
    earliest, latest = window.bounds_us()
    chunk.reject(
        chunk.ts_us < earliest,
        f"timestamp before {window.earliest:%Y-%m-%d} (the earliest accepted)",
    )
    chunk.reject(chunk.ts_us > latest, "timestamp in the future (beyond the accepted window)")
    o, h, lo, c, v = (chunk.values[k] for k in ("open", "high", "low", "close", "volume"))
    chunk.reject((o < 0) | (h < 0) | (lo < 0) | (c < 0), "negative price")
    broken = (h < lo) | (h < o) | (h < c) | (lo > o) | (lo > c)
    chunk.reject(broken, "OHLC invariant broken (need low <= open, close <= high)")
    chunk.reject(v < 0, "negative volume")
    step_us = timeframe.seconds * 1_000_000
    chunk.reject(chunk.ts_us % step_us != 0, f"timestamp not on a {timeframe.value} boundary")
    _reject_duplicates(chunk)


def spacing_seconds(ts_us: npt.NDArray[np.int64]) -> int | None:
    """The distance between most consecutive candle times, in seconds; None when no
    distance separates more than half of them (or fewer than three times say nothing)."""
    unique = np.unique(ts_us)
    if len(unique) < 3:
        return None
    steps, counts = np.unique(np.diff(unique), return_counts=True)
    if counts.max() * 2 <= len(unique) - 1:
        return None
    return int(steps[np.argmax(counts)] // 1_000_000)


def timeframe_of(seconds: int) -> Timeframe | None:
    return next((t for t in Timeframe if t.seconds == seconds), None)


def infer_timeframe(tables: Iterator[Any]) -> tuple[Timeframe, Iterator[Any]]:
    """The timeframe of a stream of candle tables, from the spacing of its first table;
    the stream is given back whole."""
    first = next(tables, None)
    if first is None:
        raise ValidationError("no candles to tell the timeframe from", field="timeframe")
    spacing = spacing_seconds(next(chunks(first)).ts_us)
    found = timeframe_of(spacing) if spacing is not None else None
    if found is None:
        said = "too few candles" if spacing is None else f"{spacing} seconds apart"
        raise ValidationError(
            f"cannot tell the timeframe ({said}): give --timeframe", field="timeframe"
        )
    return found, itertools.chain([first], tables)


def check_spacing(chunk: Chunk, timeframe: Timeframe) -> None:
    """Refuse rows that are mostly closer together than the timeframe: a 1m file
    imported as 5m would otherwise keep every 5th candle, the rest rejected as off the 5m
    grid. (Wider spacing is allowed: sparse candles of an illiquid market are normal.)"""
    spacing = spacing_seconds(chunk.ts_us[accepted_mask(chunk)] if chunk.rejected else chunk.ts_us)
    if spacing is None or spacing >= timeframe.seconds:
        return
    found = timeframe_of(spacing)
    said = found.value if found else f"{spacing} seconds"
    raise ValidationError(
        f"these candles are {said} apart, not {timeframe.value}: "
        + (f"store them as {found.value}" if found else "not a timeframe tradestore stores"),
        field="timeframe",
        value=timeframe.value,
    )


def _check_labels(chunk: Chunk, labels: npt.NDArray[Any] | None, expected: str, what: str) -> None:
    if labels is None:
        return
    for i, label in enumerate(labels):
        if label is None or label == expected:
            continue
        if what == "timeframe" and label not in {t.value for t in Timeframe}:
            chunk.rejected.setdefault(i, f"unknown timeframe {label!r}")
        elif what == "symbol" and not is_symbol(str(label)):
            chunk.rejected.setdefault(i, f"bad symbol format {label!r}")
        else:
            chunk.rejected.setdefault(i, f"{what} {label!r} is not {expected!r}")


def _reject_duplicates(chunk: Chunk) -> None:
    """Of valid rows with the same timestamp, the last one wins; earlier ones are
    rejected. (A later row that is itself rejected does not replace an earlier one.)"""
    valid = np.flatnonzero(accepted_mask(chunk))
    if len(valid) < 2:
        return
    ts = chunk.ts_us[valid]
    reversed_first = np.unique(ts[::-1], return_index=True)[1]
    keep = np.zeros(len(ts), dtype=bool)
    keep[len(ts) - 1 - reversed_first] = True
    for i in valid[~keep]:
        chunk.rejected[int(i)] = "duplicate timestamp in the input (a later row has the same time)"


def accepted_mask(chunk: Chunk) -> npt.NDArray[np.bool_]:
    mask = np.ones(len(chunk), dtype=bool)
    if chunk.rejected:
        mask[list(chunk.rejected)] = False
    return mask
