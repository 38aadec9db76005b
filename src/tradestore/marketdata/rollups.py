"""Rollups of one-minute candles into 5m, 15m, 30m, 1h, 4h and 1d.

Plain PostgreSQL: market_data_rollup holds them; a statement-level trigger on
market_data marks each (venue, symbol, UTC day) whose 1m rows were inserted, updated or
deleted in rollup_dirty (an ingest that packs a day into a column block marks it itself),
and `refresh()` recomputes exactly those days from their rows and blocks, a batch per
short transaction (so late corrections of old candles and deletions are picked up, and
nothing else is recomputed). TimescaleDB: continuous aggregates market_data_<tf> with refresh
policies (migration 0009), read in real-time mode.

A native refresh composes the coarse timeframes from 5m buckets (see FILL) to the same
numbers as the aggregates of tradestore.marketdata.resample (TimescaleDB's aggregates,
migration 0009, compute them with first/last): a rollup and a direct resample of the
same data are identical.
`candles()` serves a coarse timeframe from the rollup when its range has no dirty day,
and resamples otherwise.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from psycopg import sql

from tradestore.db.database import Database
from tradestore.errors import TransientError
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.reads import SCALED_COLUMNS, CandleReader, to_frame
from tradestore.marketdata.resample import bucket_range, resample
from tradestore.ops.tasks import PlannedAction, Progress
from tradestore.settings import TimeSeriesMode
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
ROLLUP_NATIVE = sql.SQL(
    "SELECT {columns} FROM market_data_rollup WHERE venue = {venue} AND symbol = {symbol}"
    " AND timeframe = {tf}"
    " AND timestamp >= {start} AND timestamp < {end} ORDER BY timestamp"
)
# TimescaleDB: the aggregate, and below it what migration 0020 kept of the aggregates it
# had to make again (buckets whose raw candles retention had already dropped)
ROLLUP_TIMESCALE = sql.SQL("""
SELECT {columns} FROM (
    SELECT bucket AS timestamp, open, high, low, close, volume, trades_count, vwap FROM {view}
     WHERE venue = {venue} AND symbol = {symbol} AND bucket >= {start} AND bucket < {end}
    UNION ALL
    SELECT timestamp, open, high, low, close, volume, trades_count, vwap
      FROM market_data_rollup_kept k
     WHERE venue = {venue} AND symbol = {symbol} AND timeframe = {tf}
       AND timestamp >= {start} AND timestamp < {end}
       AND NOT EXISTS (SELECT 1 FROM {view} v WHERE v.venue = k.venue AND v.symbol = k.symbol
                          AND v.bucket = k.timestamp)) r
 ORDER BY timestamp
""")


def timeframes_sql(timeframes: tuple[Timeframe, ...]) -> sql.Composed:
    """Timeframes as VALUES rows (name, step), for a cross join that buckets by each."""
    return sql.SQL(", ").join(
        sql.SQL("({}, {}::interval)").format(sql.Literal(t.value), sql.Literal(t.delta))
        for t in timeframes
    )


def fill_sql() -> sql.Composed:
    """FILL with its timeframes: 5m from the 1m candles, the coarser ones from 5m."""
    return FILL.format(five=sql.Literal(TARGETS[0].value), coarser=timeframes_sql(TARGETS[1:]))


REFRESH_ATTEMPTS = 8  # about 6 s of waiting for a concurrent refresh of the same aggregate
LOCK_NOT_AVAILABLE = "55P03"


@dataclass
class RefreshResult:
    days: int = 0  # native: dirty days recomputed; TimescaleDB: days of the refresh window
    rows: int = 0  # native: rollup rows written
    window: tuple[datetime, datetime] | None = None  # TimescaleDB: what was refreshed


# TimescaleDB: refresh whole, closed buckets only, and never below the oldest raw data
# still kept: refreshing a range whose raw chunks retention dropped would erase the
# aggregates' history there (rollups are meant to outlive raw retention).
OLDEST_RAW = """
SELECT min(range_start) FROM timescaledb_information.chunks
 WHERE hypertable_name = 'market_data'
"""
REFRESH_CAGG = "CALL refresh_continuous_aggregate({}, {}, {})"
# TimescaleDB 2.19+ commits a refresh in batches of buckets unless told otherwise, and a
# real-time aggregate read meanwhile misses the history not yet redone: refresh in one
# transaction where the server knows the option (as the policies do, migration 0019).
ATOMIC_REFRESH = (
    "CALL refresh_continuous_aggregate({}, {}, {}, options => '{{\"buckets_per_batch\": 0}}')"
)
REFRESH_HAS_OPTIONS = """
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'refresh_continuous_aggregate'
                                       AND 'options' = ANY(proargnames))
"""


class Rollups:
    def __init__(self, db: Database, reader: CandleReader, mode: TimeSeriesMode) -> None:
        self.db = db
        self.reader = reader
        self.mode = mode
        self._refresh_sql: str | None = None

    async def refresh(
        self, *, batch_days: int = 30, progress: Progress | None = None
    ) -> RefreshResult:
        """Recompute every dirty day (native); TimescaleDB refreshes by its own policies."""
        result = RefreshResult()
        if self.mode is TimeSeriesMode.TIMESCALE:
            oldest = await self.db.query_value(OLDEST_RAW)
            if oldest is None:
                return result
            now = datetime.now(UTC)
            slices = _slices(oldest, now)
            total = len(TARGETS) * len(slices)
            for i, (tf, (start, end)) in enumerate(
                ((tf, window) for tf in TARGETS for window in slices), 1
            ):
                await self._refresh_cagg(tf, start, end)
                if progress is not None:
                    progress(i, total)
            result.window = _closed_buckets(Timeframe.D1, oldest, now)
            result.days = max(0, (result.window[1] - result.window[0]).days)
            return result
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

    async def _refresh_cagg(self, tf: Timeframe, start: datetime, end: datetime) -> None:
        """Refresh tf's continuous aggregate over the whole, closed buckets of [start,
        end), kept above the oldest raw data (see OLDEST_RAW)."""
        first, last = _closed_buckets(tf, start, end)
        if last <= first:
            return
        if self._refresh_sql is None:
            atomic = await self.db.query_value(REFRESH_HAS_OPTIONS)
            self._refresh_sql = ATOMIC_REFRESH if atomic else REFRESH_CAGG
        view = sql.Literal(f"market_data_{tf.value}")
        refresh = sql.SQL(self._refresh_sql).format(view, sql.Literal(first), sql.Literal(last))
        for attempt in range(REFRESH_ATTEMPTS):
            try:
                await self.db.execute(refresh)
                return
            except TransientError as exc:
                # a policy job refreshing the same aggregate holds its lock ("could not
                # refresh ... due to a concurrent refresh"): it ends soon, then ours is cheap
                if exc.sqlstate != LOCK_NOT_AVAILABLE or attempt + 1 == REFRESH_ATTEMPTS:
                    raise
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))

    async def is_fresh(
        self, symbol: str, start: datetime, end: datetime, *, venue: str = DEFAULT_VENUE
    ) -> bool:
        if self.mode is TimeSeriesMode.TIMESCALE:
            return True  # read() refreshes its window first (see there)
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
        """Rollup candles labelled in [start, end) (as stored; see is_fresh).

        TimescaleDB: real-time aggregates show raw rows above their watermark only; a late
        correction below it would be invisible until a refresh. So the read's closed
        buckets are refreshed first (only invalidated buckets are recomputed: cheap when
        nothing changed), above the oldest raw data kept."""
        if timeframe not in TARGETS:
            raise ValueError(f"no rollup for {timeframe.value}")
        first, last = bucket_range(timeframe, start, end)  # whole buckets, as resample()
        literals = {
            "venue": sql.Literal(venue),
            "tf": sql.Literal(timeframe.value),
            "symbol": sql.Literal(symbol),
            "start": sql.Literal(first),
            "end": sql.Literal(last),
            "columns": SCALED_COLUMNS,
        }
        if self.mode is TimeSeriesMode.TIMESCALE:
            oldest = await self.db.query_value(OLDEST_RAW)
            if oldest is not None:
                await self._refresh_cagg(timeframe, max(first, oldest), last)
            query = ROLLUP_TIMESCALE.format(
                view=sql.Identifier(f"market_data_{timeframe.value}"), **literals
            )
        else:
            query = ROLLUP_NATIVE.format(**literals)
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
        if self.mode is TimeSeriesMode.TIMESCALE:
            return [
                PlannedAction(
                    "rollups", "refresh", "continuous aggregates", "by TimescaleDB refresh policies"
                )
            ]
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


REFRESH_SLICE = timedelta(days=30)  # one refresh call per slice: no statement nears its timeout


def _slices(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at midnights UTC every REFRESH_SLICE (every timeframe divides a
    day, so no bucket straddles two slices)."""
    out, cut = [], Timeframe.D1.bucket_start(start)
    while cut < end:
        out.append((max(cut, start), min(cut + REFRESH_SLICE, end)))
        cut += REFRESH_SLICE
    return out


def _closed_buckets(tf: Timeframe, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[first, last): the whole buckets of tf inside [start, end) that have closed (a
    bucket cut by start lost raw rows to retention; one reaching now is still open)."""
    first = tf.bucket_start(start)
    if first < start:
        first += tf.delta
    return first, min(tf.bucket_start(end), tf.bucket_start(datetime.now(UTC)))


def _day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()
