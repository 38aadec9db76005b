"""Quality checks of stored series: gaps, repeated candles, outliers, and the refresh of
data_quality_score (see quality.py for the score's definition)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tradestore.db.database import Database
from tradestore.errors import NotFound
from tradestore.marketdata.blocks import expand
from tradestore.marketdata.calendars import AlwaysOpen, MarketHours, market_hours
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.quality import (
    empty_mask,
    outlier_mask,
    quality_scores,
    repeat_mask,
)
from tradestore.marketdata.reads import CandleReader
from tradestore.marketdata.validation import LOCK_SERIES, check_symbol, check_venue, series_key
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe

# Each missing stretch: from the candle after `before` to the one before `after`.
GAPS_SQL = """
SELECT timestamp AS before, next_ts AS after
  FROM (SELECT timestamp, lead(timestamp) OVER (ORDER BY timestamp) AS next_ts
          FROM market_data_range(%(venue)s, %(symbol)s, %(tf)s, %(since)s, %(until)s)) t
 WHERE next_ts - timestamp > %(step)s
 ORDER BY timestamp
"""
STORED_RANGE_SQL = """
SELECT first_ts, last_ts FROM market_data_catalog
 WHERE venue = %s AND symbol = %s AND timeframe = %s
"""
SET_SCORES_SQL = """
UPDATE market_data m SET data_quality_score = s.score
  FROM unnest(%(ts)s::timestamptz[], %(score)s::int2[]) AS s(ts, score)
 WHERE m.venue = %(venue)s AND m.symbol = %(symbol)s AND m.timeframe = %(tf)s
   AND m.timestamp = s.ts
   AND m.data_quality_score IS DISTINCT FROM s.score
"""


@dataclass(frozen=True)
class Gap:
    start: datetime  # first missing candle
    end: datetime  # last missing candle
    missing: int


@dataclass
class QualityReport:
    symbol: str
    timeframe: Timeframe
    since: datetime  # the range checked: [since, until)
    until: datetime
    candles: int
    gaps: list[Gap]
    repeated: list[datetime]  # candles identical to the previous one (volume > 0)
    outliers: list[datetime]
    empty: int  # zero-volume flat candles
    average_score: float

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)


class QualityChecks:
    def __init__(self, db: Database, reader: CandleReader) -> None:
        self.db = db
        self.reader = reader

    async def stored_range(
        self, symbol: str, timeframe: Timeframe | str, *, venue: str = DEFAULT_VENUE
    ) -> tuple[datetime, datetime]:
        """[first, last + 1 candle) of a stored series; NotFound for an unknown one."""
        check_symbol(symbol)
        check_venue(venue)
        tf = Timeframe.parse_stored(timeframe)
        row = await self.db.query_one(STORED_RANGE_SQL, (venue, symbol, tf.value))
        if row is None:
            raise NotFound(f"no {symbol} {tf.value} candles of {venue} are stored")
        return row["first_ts"], row["last_ts"] + tf.delta

    async def gaps(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        calendar: str | MarketHours | None = None,
        venue: str = DEFAULT_VENUE,
    ) -> list[Gap]:
        """Every run of missing candles between stored ones in [since, until) (default:
        the series' whole stored range), counting only candles the market's hours
        expect (`calendar`: 24/7 by default, `fx`, or an exchange code; see calendars)."""
        tf = Timeframe.parse_stored(timeframe)
        first, last = await self.stored_range(symbol, tf, venue=venue)
        return await self._gaps(venue, symbol, tf, since or first, until or last, calendar)

    async def _gaps(
        self,
        venue: str,
        symbol: str,
        tf: Timeframe,
        since: datetime,
        until: datetime,
        calendar: str | MarketHours | None,
    ) -> list[Gap]:
        """The gaps of a series known to be stored."""
        hours = calendar if not isinstance(calendar, str | None) else market_hours(calendar)
        rows = await self.db.query(
            GAPS_SQL,
            {
                "venue": venue,
                "symbol": symbol,
                "tf": tf.value,
                "since": since,
                "until": until,
                "step": tf.delta,
            },
        )
        found = [_gap(r, tf) for r in rows]
        if isinstance(hours, AlwaysOpen):
            return found
        return [part for gap in found for part in _open_parts(gap, tf, hours)]

    async def report(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        calendar: str | None = None,
        venue: str = DEFAULT_VENUE,
    ) -> QualityReport:
        tf = Timeframe.parse_stored(timeframe)
        first, last = await self.stored_range(symbol, tf, venue=venue)
        since, until = since or first, until or last
        frame = await self.reader.historical(symbol, tf, since, until, venue=venue)
        scores = _scores(frame)
        columns = (frame.open, frame.high, frame.low, frame.close, frame.volume)
        repeated = repeat_mask(*columns)
        outliers = outlier_mask(frame.high, frame.low, frame.close)
        empty = empty_mask(*columns)
        return QualityReport(
            symbol=symbol,
            timeframe=tf,
            since=since,
            until=until,
            candles=len(frame),
            gaps=await self._gaps(venue, symbol, tf, since, until, calendar),
            repeated=_times(frame, repeated),
            outliers=_times(frame, outliers),
            empty=int(empty.sum()),
            average_score=float(scores.mean()) if len(scores) else 100.0,
        )

    async def rescore(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        since: datetime,
        until: datetime,
        *,
        venue: str = DEFAULT_VENUE,
    ) -> int:
        """Recompute data_quality_score over the whole range (outliers are judged against
        all neighbours in it, not one ingest batch); returns how many rows changed."""
        tf = Timeframe.parse(timeframe)
        frame = await self.reader.historical(symbol, tf, since, until, exact=False, venue=venue)
        if not len(frame):
            return 0
        stamps = [t.item().replace(tzinfo=UTC) for t in frame.timestamp]
        params = {
            "ts": stamps,
            "score": [int(s) for s in _scores(frame)],
            "venue": venue,
            "symbol": symbol,
            "tf": tf.value,
        }
        async with self.db.transaction() as conn:
            await conn.execute(LOCK_SERIES, (series_key(venue, symbol, tf.value),))
            await expand(conn, venue, symbol, tf.value, since, until)  # scores live in rows
            cur = await conn.execute(SET_SCORES_SQL, params)
            return int(cur.rowcount)


def _scores(frame: CandleFrame) -> Any:
    return quality_scores(frame.open, frame.high, frame.low, frame.close, frame.volume)


def _times(frame: CandleFrame, mask: Any) -> list[datetime]:
    return [t.item().replace(tzinfo=UTC) for t in frame.timestamp[mask]]


def _open_parts(gap: Gap, tf: Timeframe, hours: MarketHours) -> list[Gap]:
    """The runs of a gap's missing candles that the market's hours expect."""
    first_us = int(gap.start.timestamp()) * 1_000_000
    starts = first_us + np.arange(gap.missing, dtype=np.int64) * tf.seconds * 1_000_000
    expected = hours.expected(starts, tf)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], expected, [False]]).astype(np.int8)))
    parts = []
    for begin, stop in zip(edges[::2], edges[1::2], strict=True):
        start = gap.start + (int(begin) * tf.delta)
        parts.append(Gap(start, start + (int(stop - begin) - 1) * tf.delta, int(stop - begin)))
    return parts


def _gap(row: dict[str, Any], tf: Timeframe) -> Gap:
    start = row["before"] + tf.delta
    end = row["after"] - tf.delta
    return Gap(start=start, end=end, missing=int((end - start) / tf.delta) + 1)
