"""Bulk ingest of closed history straight into column blocks (plain PostgreSQL).

An import of old candles (a file, an exchange backfill) would otherwise insert every
candle as a row, index it, and have `maintain` move it into a block later. When a staged
chunk (ingest.py's `md_stage`, exact scaled int8 columns) holds candles of periods that
closed before the compaction horizon and hold nothing of the series yet (no row, no
block, and for 1m no day waiting for a rollup refresh), those periods are packed from
the stage into blocks in the ingest's transaction, their 1m rollups are computed from
the stage in it too, and only the rest of the stage goes on to market_data as rows.

So the blocks' invariant holds: a period's candles are in one place. A period that a
chunk boundary splits gets a block from the first chunk; the next chunk finds that block
in its range, expands it into rows (ingest.py, as for any correction) and adds its own:
that period stays rows until the next `maintain` packs it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from tradestore.db.database import Connection
from tradestore.marketdata.blocks import EPOCH, period_length
from tradestore.marketdata.resample import BUCKET_AGGREGATES
from tradestore.marketdata.rollups import CLEAR, targets_sql
from tradestore.timeframes import Timeframe

# The periods of the stage to pack: closed before the horizon, holding no row and no block
# of the series, and (1m) no day whose rollups wait for a refresh, since that refresh reads
# rows. Each check is one index probe a period.
PERIODS_TO_PACK = """
SELECT p.period_start FROM (
    SELECT DISTINCT date_bin(%(length)s, ts, %(epoch)s) AS period_start FROM md_stage) p
 WHERE p.period_start + %(length)s <= %(horizon)s
   AND NOT EXISTS (SELECT 1 FROM market_data m
                    WHERE m.venue = %(venue)s AND m.symbol = %(symbol)s
                      AND m.timeframe = %(timeframe)s AND m.timestamp >= p.period_start
                      AND m.timestamp < p.period_start + %(length)s)
   AND NOT EXISTS (SELECT 1 FROM market_data_block b
                    WHERE b.venue = %(venue)s AND b.symbol = %(symbol)s
                      AND b.timeframe = %(timeframe)s AND b.period_start = p.period_start)
   AND NOT (%(timeframe)s = '1m' AND EXISTS (
            SELECT 1 FROM rollup_dirty d WHERE d.venue = %(venue)s AND d.symbol = %(symbol)s
               AND d.day = (p.period_start AT TIME ZONE 'UTC')::date))
 ORDER BY 1
"""
IN_PERIODS = "date_bin(%(length)s, s.ts, %(epoch)s) = ANY(%(periods)s::timestamptz[])"
# The stage's candles of those periods as market_data's columns, for the rollups: the same
# values the rows would hold, so the same aggregates give the same numbers.
ROLLUPS_FROM_STAGE = sql.SQL("""
INSERT INTO market_data_rollup (venue, symbol, timeframe, timestamp, open, high, low, close,
                                volume, trades_count, vwap)
SELECT %(venue)s, %(symbol)s, tf.name,
       date_bin(tf.step, m.timestamp, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
       {aggregates}
  FROM (SELECT s.ts AS timestamp, s.open * 0.00000001 AS open, s.high * 0.00000001 AS high,
               s.low * 0.00000001 AS low, s.close * 0.00000001 AS close,
               s.volume * 0.00000001 AS volume, NULLIF(s.trades_count, -1) AS trades_count,
               CASE WHEN s.vwap = -9223372036854775808 THEN NULL
                    ELSE s.vwap * 0.00000001 END AS vwap
          FROM md_stage s WHERE {in_periods}) m
 CROSS JOIN (VALUES {targets}) AS tf(name, step)
 GROUP BY tf.name, 4
""")
# Move those candles from the stage into one block a period. The stage holds the block's
# encoding already (scaled int8, -1 for unknown trades, the int8 minimum for unknown vwap);
# int8send writes them big-endian, as the compaction does.
PACK_STAGE = sql.SQL("""
WITH moved AS (
    DELETE FROM md_stage s WHERE {in_periods}
    RETURNING s.*, date_bin(%(length)s, s.ts, %(epoch)s) AS period_start
), packed AS (
    INSERT INTO market_data_block (venue, symbol, timeframe, period_start, period_end,
                                   row_count, first_ts, last_ts, slots, open, high, low,
                                   close, volume, trades_count, vwap, data_quality_score,
                                   created_at, data_source)
    SELECT %(venue)s, %(symbol)s, %(timeframe)s, period_start, period_start + %(length)s,
           count(*), min(ts), max(ts),
           market_data_slot_bitmap(array_agg(
               market_data_slot(ts, period_start, period_start + %(length)s))),
           string_agg(int8send(open), ''::bytea ORDER BY ts),
           string_agg(int8send(high), ''::bytea ORDER BY ts),
           string_agg(int8send(low), ''::bytea ORDER BY ts),
           string_agg(int8send(close), ''::bytea ORDER BY ts),
           string_agg(int8send(volume), ''::bytea ORDER BY ts),
           string_agg(int4send(trades_count), ''::bytea ORDER BY ts),
           string_agg(int8send(vwap), ''::bytea ORDER BY ts),
           array_agg(quality ORDER BY ts),
           array_fill((extract(epoch FROM now()) * 1000000)::int8, ARRAY[count(*)::int]),
           array_fill(%(source)s::text, ARRAY[count(*)::int])
      FROM moved GROUP BY period_start
    RETURNING row_count, period_end
)
SELECT coalesce(sum(row_count), 0) AS n, max(period_end) AS until FROM packed
""").format(in_periods=sql.SQL(IN_PERIODS))


@dataclass(frozen=True)
class Packed:
    candles: int = 0
    until: datetime | None = None  # the end of the last period packed


async def pack_closed_periods(
    conn: Connection, params: dict[str, Any], timeframe: Timeframe, horizon: datetime
) -> Packed:
    """Pack the stage's candles of closed, empty periods into blocks (and their 1m
    rollups), removing them from the stage; in the caller's transaction, which holds the
    series' ingest lock."""
    length = period_length(timeframe)
    query = {**params, "length": length, "epoch": EPOCH, "horizon": horizon}
    cur = await conn.execute(PERIODS_TO_PACK, query)
    periods = [row["period_start"] for row in await cur.fetchall()]
    if not periods:
        return Packed()
    query["periods"] = periods
    if timeframe is Timeframe.M1:
        await _roll_up(conn, query, periods)
    cur = await conn.execute(PACK_STAGE, query)
    row = await cur.fetchone()
    assert row is not None
    return Packed(int(row["n"]), row["until"])


async def _roll_up(conn: Connection, query: dict[str, Any], days: list[datetime]) -> None:
    """The 1m periods are UTC days: replace whatever rollups they had (kept past raw
    retention) with those of the staged candles."""
    n = len(days)
    clear = {
        "venues": [query["venue"]] * n,
        "symbols": [query["symbol"]] * n,
        "days": [d.date() for d in days],
    }
    await conn.execute(CLEAR, clear)
    fill = ROLLUPS_FROM_STAGE.format(
        aggregates=BUCKET_AGGREGATES, in_periods=sql.SQL(IN_PERIODS), targets=targets_sql()
    )
    await conn.execute(fill, query)
