"""Rollups of 100 symbols x 8 days of 1m candles.

- refreshing after one new day, against recomputing every rollup from scratch (plain
  PostgreSQL); and that from-scratch refresh (5m from 1m, coarser from 5m) against
  aggregating every timeframe from the 1m candles, as the refresh did before;
- coarse reads (1h over the 8 days, READ_SYMBOLS symbols) from the rollup table, against
  resampling the 1m candles on the same server; in TimescaleDB mode too when a server is
  configured (the same rollup table there since migration 0029).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from psycopg import sql

from bench.harness import BenchContext, Result
from tradestore import TradeStore
from tradestore.marketdata.resample import BUCKET_AGGREGATES
from tradestore.marketdata.rollups import TARGETS, timeframes_sql
from tradestore.timeframes import Timeframe

SYMBOLS = 100
HISTORY_DAYS = 7
START = datetime(2023, 6, 1, tzinfo=UTC)


def _day(day: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = 1440
    close = np.round(100 + np.cumsum(rng.normal(0, 0.1, n)), 4)
    data = np.zeros(
        n,
        dtype=[
            ("timestamp", "datetime64[us]"),
            ("open", "f8"),
            ("high", "f8"),
            ("low", "f8"),
            ("close", "f8"),
            ("volume", "f8"),
        ],
    )
    first = np.datetime64((START + timedelta(days=day)).replace(tzinfo=None), "us")
    data["timestamp"] = first + np.arange(n) * np.timedelta64(60, "s")
    data["open"], data["close"] = close, close
    data["high"], data["low"], data["volume"] = close + 0.05, close - 0.05, 1.0
    return data


READ_SYMBOLS = 20
# every (venue, symbol, day) of 1m candles, in rows or packed at ingest (a 1m block is a
# UTC day)
EVERY_DAY = """
SELECT DISTINCT venue, symbol, (timestamp AT TIME ZONE 'UTC')::date AS day
  FROM market_data WHERE timeframe = '1m'
UNION
SELECT venue, symbol, (period_start AT TIME ZONE 'UTC')::date
  FROM market_data_block WHERE timeframe = '1m'
"""
MARK_DIRTY = """
INSERT INTO rollup_dirty (venue, symbol, day)
SELECT * FROM unnest(%(venues)s::text[], %(symbols)s::text[], %(days)s::date[])
ON CONFLICT DO NOTHING
"""
# The baseline: what the refresh did before it composed the coarse timeframes from 5m
# ones: every timeframe aggregated from the day's 1m candles, into a scratch table.
PER_TIMEFRAME_FILL = sql.SQL("""
INSERT INTO bench_rollup_baseline
SELECT m.venue, m.symbol, tf.name,
       date_bin(tf.step, m.timestamp, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
       {aggregates}
  FROM unnest(%(venues)s::text[], %(symbols)s::text[], %(days)s::date[])
       AS b(venue, symbol, day)
 CROSS JOIN LATERAL market_data_range(
       b.venue, b.symbol, '1m', (b.day::timestamp AT TIME ZONE 'UTC'),
       ((b.day + 1)::timestamp AT TIME ZONE 'UTC')) m
 CROSS JOIN (VALUES {targets}) AS tf(name, step)
 GROUP BY m.venue, m.symbol, tf.name, 4
""").format(aggregates=BUCKET_AGGREGATES, targets=timeframes_sql(TARGETS))
BASELINE_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS bench_rollup_baseline (
    venue text, symbol text, timeframe text, timestamp timestamptz, open numeric,
    high numeric, low numeric, close numeric, volume numeric, trades_count bigint,
    vwap numeric)
"""


def _day_arrays(days: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {
        "venues": [d["venue"] for d in days],
        "symbols": [d["symbol"] for d in days],
        "days": [d["day"] for d in days],
    }


async def _per_timeframe_fill(store: TradeStore, days: list[dict[str, Any]]) -> float:
    """Seconds the baseline takes over the same days, in the refresh's batches of 30."""
    started = time.perf_counter()
    for i in range(0, len(days), 30):
        async with store.db.transaction() as conn:
            await conn.execute(BASELINE_TABLE)
            await conn.execute(PER_TIMEFRAME_FILL, _day_arrays(days[i : i + 30]))
    return time.perf_counter() - started


COARSE_READ = f"read 1h x {HISTORY_DAYS + 1} days x {READ_SYMBOLS} symbols"


async def _coarse_reads(store: TradeStore) -> tuple[float, float]:
    """(seconds reading the rollups, seconds resampling), for the same candles."""
    rollups = store.rollups
    end = START + timedelta(days=HISTORY_DAYS + 1)
    timings = []
    for read in (rollups.read, store.market_data.resample):
        started = time.perf_counter()
        for s in range(READ_SYMBOLS):
            frame = await read(f"RB{s:03d}-USD", Timeframe.H1, START, end)
            assert len(frame) == 24 * (HISTORY_DAYS + 1)
        timings.append(time.perf_counter() - started)
    return timings[0], timings[1]


async def _timescale_reads(ts: TradeStore) -> tuple[float, float]:
    for s in range(READ_SYMBOLS):
        history = np.concatenate([_day(d, s * 100 + d) for d in range(HISTORY_DAYS + 1)])
        await ts.market_data.store_candles(f"RB{s:03d}-USD", "1m", history)
    await ts.rollups.refresh()
    return await _coarse_reads(ts)


async def run(ctx: BenchContext) -> list[Result]:
    store = ctx.store
    md = store.market_data
    for s in range(SYMBOLS):
        history = np.concatenate([_day(d, s * 100 + d) for d in range(HISTORY_DAYS)])
        await md.store_candles(f"RB{s:03d}-USD", "1m", history)
    rollups = store.rollups
    await rollups.refresh()
    for s in range(SYMBOLS):  # one new day for every symbol
        await md.store_candles(f"RB{s:03d}-USD", "1m", _day(HISTORY_DAYS, s * 100 + 99))
    started = time.perf_counter()
    incremental = await rollups.refresh()
    incremental_s = time.perf_counter() - started
    await store.db.execute("TRUNCATE market_data_rollup")
    days = await store.db.query(EVERY_DAY)
    await store.db.execute(MARK_DIRTY, _day_arrays(days))
    started = time.perf_counter()
    scratch = await rollups.refresh()
    scratch_s = time.perf_counter() - started
    per_timeframe_s = await _per_timeframe_fill(store, days)
    assert incremental.days == SYMBOLS and scratch.days >= SYMBOLS * (HISTORY_DAYS + 1)
    native_rollup, native_resample = await _coarse_reads(store)
    reads = [
        Result(
            COARSE_READ + ", plain PostgreSQL rollups",
            native_rollup,
            native_resample,
            "s",
            "resampling the 1m candles",
            higher_is_better=False,
        )
    ]
    if ctx.timescale is not None:
        ts_rollup, ts_resample = await _timescale_reads(ctx.timescale)
        reads += [
            Result(
                COARSE_READ + ", TimescaleDB mode rollups",
                ts_rollup,
                ts_resample,
                "s",
                "resampling the 1m candles on TimescaleDB",
                higher_is_better=False,
            ),
        ]
    return [
        *reads,
        Result(
            f"rollup refresh of all {scratch.days} symbol-days (coarser from 5m)",
            scratch_s,
            per_timeframe_s,
            "s",
            "every timeframe from the 1m candles (the former refresh)",
            higher_is_better=False,
        ),
        Result(
            f"rollup refresh after 1 new day x {SYMBOLS} symbols",
            incremental_s,
            scratch_s,
            "s",
            f"recompute all {scratch.days} symbol-days",
            higher_is_better=False,
        ),
    ]
