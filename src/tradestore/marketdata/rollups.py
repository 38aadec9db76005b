"""Rollups of one-minute candles into 5m, 15m, 30m, 1h, 4h and 1d.

market_data_rollup holds them, in both time-series modes: triggers on market_data mark
each (venue, symbol, UTC day) whose 1m rows were inserted, updated or deleted in
rollup_dirty (an ingest that packs a day into a column block marks it itself), and
`refresh()` recomputes exactly those days from their rows and blocks, a batch per short
transaction (so late corrections of old candles and deletions are picked up, and nothing
else is recomputed). TimescaleDB's continuous aggregates are not used: they read only the
hypertable's rows, and closed history lives in column blocks (migration 0029).

A refresh composes the coarse timeframes from 5m buckets (see FILL) to the same numbers
as the aggregates of tradestore.marketdata.resample: a rollup and a direct resample of
the same data are identical.
`candles()` serves a coarse timeframe from the rollup when its range has no dirty day,
and resamples otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from psycopg import sql

from tradestore.db.database import Database
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.reads import SCALED_COLUMNS, CandleReader, to_frame
from tradestore.marketdata.resample import bucket_range, resample
from tradestore.ops.tasks import PlannedAction, Progress
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe

TARGETS = (Timeframe.M5, Timeframe.M15, Timeframe.M30, Timeframe.H1, Timeframe.H4, Timeframe.D1)
TAKE_DIRTY = """
DELETE FROM rollup_dirty WHERE (venue, symbol, day) IN (
    SELECT venue, symbol, day FROM rollup_dirty ORDER BY day, venue, symbol LIMIT %s
       FOR UPDATE SKIP LOCKED)
RETURNING venue, symbol, day
"""
CLEAR = """
DELETE FROM market_data_rollup r
 USING unnest(%(venues)s::text[], %(symbols)s::text[], %(days)s::date[])
       AS b(venue, symbol, day)
 WHERE r.venue = b.venue AND r.symbol = b.symbol
   AND r.timestamp >= (b.day::timestamp AT TIME ZONE 'UTC')
   AND r.timestamp < ((b.day + 1)::timestamp AT TIME ZONE 'UTC')
"""
# The 5m buckets are aggregated from the day's 1m candles once, and every coarser
# timeframe from those (all divide a UTC day and start at the epoch, so each bucket is a
# union of 5m ones): each 1m candle is aggregated once instead of once per timeframe.
# Exactly the numbers of BUCKET_AGGREGATES: first/last by time, max, min and sums compose,
# and vwap is divided and rounded only at the end, from the exact NUMERIC sum of price x
# volume (`pv`) of the whole bucket.
FILL = sql.SQL("""
WITH five AS (
    SELECT m.venue, m.symbol,
           date_bin('5 minutes', m.timestamp, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS timestamp,
           (array_agg(m.open ORDER BY m.timestamp))[1] AS open,
           max(m.high) AS high,
           min(m.low) AS low,
           (array_agg(m.close ORDER BY m.timestamp DESC))[1] AS close,
           sum(m.volume) AS volume,
           sum(m.trades_count) AS trades_count,
           sum(coalesce(m.vwap, m.close) * m.volume) AS pv
      FROM unnest(%(venues)s::text[], %(symbols)s::text[], %(days)s::date[])
           AS b(venue, symbol, day)
     -- LATERAL: one primary-key range scan per series day (and one probe of its blocks: a
     -- day an ingest packed straight away is marked too); a plain join let the planner
     -- hash on the symbol and filter every row of the series by the day
     CROSS JOIN LATERAL market_data_range(
           b.venue, b.symbol, '1m', (b.day::timestamp AT TIME ZONE 'UTC'),
           ((b.day + 1)::timestamp AT TIME ZONE 'UTC')) m
     GROUP BY 1, 2, 3
), buckets AS (
    SELECT venue, symbol, {five} AS timeframe, timestamp, open, high, low, close, volume,
           trades_count, pv
      FROM five
    UNION ALL
    SELECT f.venue, f.symbol, tf.name,
           date_bin(tf.step, f.timestamp, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
           (array_agg(f.open ORDER BY f.timestamp))[1],
           max(f.high),
           min(f.low),
           (array_agg(f.close ORDER BY f.timestamp DESC))[1],
           sum(f.volume),
           sum(f.trades_count),
           sum(f.pv)
      FROM five f
     CROSS JOIN (VALUES {coarser}) AS tf(name, step)
     GROUP BY f.venue, f.symbol, tf.name, 4
)
INSERT INTO market_data_rollup (venue, symbol, timeframe, timestamp, open, high, low, close,
                                volume, trades_count, vwap)
SELECT venue, symbol, timeframe, timestamp, open, high, low, close, volume, trades_count,
       round(pv / nullif(volume, 0), 8)
  FROM buckets
""")
DIRTY_COUNT = (
    "SELECT count(*) AS days, count(DISTINCT (venue, symbol)) AS symbols FROM rollup_dirty"
)
DIRTY_IN_RANGE = """
SELECT 1 FROM rollup_dirty WHERE venue = %s AND symbol = %s AND day BETWEEN %s AND %s LIMIT 1
"""
ROLLUP = sql.SQL(
    "SELECT {columns} FROM market_data_rollup WHERE venue = {venue} AND symbol = {symbol}"
    " AND timeframe = {tf}"
    " AND timestamp >= {start} AND timestamp < {end} ORDER BY timestamp"
)


def timeframes_sql(timeframes: tuple[Timeframe, ...]) -> sql.Composed:
    """Timeframes as VALUES rows (name, step), for a cross join that buckets by each."""
    return sql.SQL(", ").join(
        sql.SQL("({}, {}::interval)").format(sql.Literal(t.value), sql.Literal(t.delta))
        for t in timeframes
    )


def fill_sql() -> sql.Composed:
    """FILL with its timeframes: 5m from the 1m candles, the coarser ones from 5m."""
    return FILL.format(five=sql.Literal(TARGETS[0].value), coarser=timeframes_sql(TARGETS[1:]))


@dataclass
class RefreshResult:
    days: int = 0  # dirty days recomputed
    rows: int = 0  # rollup rows written


class Rollups:
    def __init__(self, db: Database, reader: CandleReader) -> None:
        self.db = db
        self.reader = reader

    async def refresh(
        self, *, batch_days: int = 30, progress: Progress | None = None
    ) -> RefreshResult:
        """Recompute every dirty day, batch_days a transaction."""
        result = RefreshResult()
        total = int((await self.db.query_one(DIRTY_COUNT) or {"days": 0})["days"])
        fill = fill_sql()
        while True:
            async with self.db.transaction() as conn:
                cur = await conn.execute(TAKE_DIRTY, (batch_days,))
                batch = await cur.fetchall()
                if not batch:
                    break
                params = {
                    "venues": [r["venue"] for r in batch],
                    "symbols": [r["symbol"] for r in batch],
                    "days": [r["day"] for r in batch],
                }
                await conn.execute(CLEAR, params)
                cur = await conn.execute(fill, params)
                result.rows += cur.rowcount
            result.days += len(batch)
            if progress is not None:
                progress(result.days, max(total, result.days))
        await self.db.execute("UPDATE rollup_state SET last_refresh_at = now()")
        return result

    async def is_fresh(
        self, symbol: str, start: datetime, end: datetime, *, venue: str = DEFAULT_VENUE
    ) -> bool:
        row = await self.db.query_one(DIRTY_IN_RANGE, (venue, symbol, _day(start), _day(end)))
        return row is None

    async def read(
        self,
        symbol: str,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        exact: bool = False,
        venue: str = DEFAULT_VENUE,
    ) -> CandleFrame:
        """Rollup candles labelled in [start, end), as stored (see is_fresh)."""
        if timeframe not in TARGETS:
            raise ValueError(f"no rollup for {timeframe.value}")
        first, last = bucket_range(timeframe, start, end)  # whole buckets, as resample()
        query = ROLLUP.format(
            venue=sql.Literal(venue),
            tf=sql.Literal(timeframe.value),
            symbol=sql.Literal(symbol),
            start=sql.Literal(first),
            end=sql.Literal(last),
            columns=SCALED_COLUMNS,
        )
        return to_frame(await self.reader.copy_out(query), symbol, timeframe, exact=exact)

    async def candles(
        self,
        symbol: str,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        exact: bool = False,
        venue: str = DEFAULT_VENUE,
    ) -> tuple[CandleFrame, str]:
        """Coarse candles from the rollup when fresh, else resampled: (frame, source)."""
        if timeframe in TARGETS and await self.is_fresh(symbol, start, end, venue=venue):
            frame = await self.read(symbol, timeframe, start, end, exact=exact, venue=venue)
            return frame, "rollup"
        frame = await resample(self.reader, symbol, timeframe, start, end, exact=exact, venue=venue)
        return frame, "resample"

    async def plan(self) -> list[PlannedAction]:
        row = await self.db.query_one(DIRTY_COUNT)
        days = int(row["days"]) if row else 0
        if not days:
            return []
        return [
            PlannedAction(
                "rollups",
                "refresh",
                f"{days} day(s) of 1m data",
                f"{row['symbols'] if row else 0} symbol(s)",
            )
        ]


def _day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()
