"""Quality checks of stored series: gaps, repeated candles, outliers, and the refresh of
data_quality_score (see quality.py for the score's definition)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradestore.db.database import Database
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.quality import (
    empty_mask,
    outlier_mask,
    quality_scores,
    repeat_mask,
)
from tradestore.marketdata.reads import CandleReader
from tradestore.marketdata.validation import check_symbol
from tradestore.timeframes import Timeframe

# Each missing stretch: from the candle after `before` to the one before `after`.
GAPS_SQL = """
SELECT timestamp AS before, next_ts AS after
  FROM (SELECT timestamp, lead(timestamp) OVER (ORDER BY timestamp) AS next_ts
          FROM market_data
         WHERE symbol = %(symbol)s AND timeframe = %(tf)s
           AND timestamp >= %(since)s AND timestamp < %(until)s) t
 WHERE next_ts - timestamp > %(step)s
 ORDER BY timestamp
"""
SET_SCORES_SQL = """
UPDATE market_data m SET data_quality_score = s.score
  FROM unnest(%(ts)s::timestamptz[], %(score)s::int2[]) AS s(ts, score)
 WHERE m.symbol = %(symbol)s AND m.timeframe = %(tf)s AND m.timestamp = s.ts
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

    async def gaps(
        self, symbol: str, timeframe: Timeframe | str, since: datetime, until: datetime
    ) -> list[Gap]:
        """Every run of missing candles between the first and last stored in the range."""
        check_symbol(symbol)
        tf = Timeframe.parse(timeframe)
        rows = await self.db.query(
            GAPS_SQL,
            {"symbol": symbol, "tf": tf.value, "since": since, "until": until, "step": tf.delta},
        )
        return [_gap(r, tf) for r in rows]

    async def report(
        self, symbol: str, timeframe: Timeframe | str, since: datetime, until: datetime
    ) -> QualityReport:
        tf = Timeframe.parse(timeframe)
        frame = await self.reader.historical(symbol, tf, since, until)
        scores = _scores(frame)
        columns = (frame.open, frame.high, frame.low, frame.close, frame.volume)
        repeated = repeat_mask(*columns)
        outliers = outlier_mask(frame.high, frame.low, frame.close)
        empty = empty_mask(*columns)
        return QualityReport(
            symbol=symbol,
            timeframe=tf,
            candles=len(frame),
            gaps=await self.gaps(symbol, tf, since, until),
            repeated=_times(frame, repeated),
            outliers=_times(frame, outliers),
            empty=int(empty.sum()),
            average_score=float(scores.mean()) if len(scores) else 100.0,
        )

    async def rescore(
        self, symbol: str, timeframe: Timeframe | str, since: datetime, until: datetime
    ) -> int:
        """Recompute data_quality_score over the whole range (outliers are judged against
        all neighbours in it, not one ingest batch); returns how many rows changed."""
        tf = Timeframe.parse(timeframe)
        frame = await self.reader.historical(symbol, tf, since, until, exact=False)
        if not len(frame):
            return 0
        stamps = [t.item().replace(tzinfo=UTC) for t in frame.timestamp]
        return await self.db.execute(
            SET_SCORES_SQL,
            {
                "ts": stamps,
                "score": [int(s) for s in _scores(frame)],
                "symbol": symbol,
                "tf": tf.value,
            },
        )


def _scores(frame: CandleFrame) -> Any:
    return quality_scores(frame.open, frame.high, frame.low, frame.close, frame.volume)


def _times(frame: CandleFrame, mask: Any) -> list[datetime]:
    return [t.item().replace(tzinfo=UTC) for t in frame.timestamp[mask]]


def _gap(row: dict[str, Any], tf: Timeframe) -> Gap:
    start = row["before"] + tf.delta
    end = row["after"] - tf.delta
    return Gap(start=start, end=end, missing=int((end - start) / tf.delta) + 1)
