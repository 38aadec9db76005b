"""Rollups of 100 symbols x 8 days of 1m candles.

- refreshing after one new day, against recomputing every rollup from scratch (plain
  PostgreSQL);
- coarse reads (1h over the 8 days, READ_SYMBOLS symbols) from the rollup table, and
  from TimescaleDB's continuous aggregates when a server is configured, each against
  resampling the 1m candles on the same server, and the aggregates against the rollups.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np

from bench.harness import BenchContext, Result
from tradestore import TradeStore
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
    await store.db.execute(
        "INSERT INTO rollup_dirty (venue, symbol, day) SELECT DISTINCT venue, symbol, "
        "(timestamp AT TIME ZONE 'UTC')::date FROM market_data WHERE timeframe = '1m' "
        "UNION SELECT venue, symbol, (period_start AT TIME ZONE 'UTC')::date"
        " FROM market_data_block WHERE timeframe = '1m' ON CONFLICT DO NOTHING"
    )  # every day, in rows or packed at ingest (a 1m block is a UTC day)
    started = time.perf_counter()
    scratch = await rollups.refresh()
    scratch_s = time.perf_counter() - started
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
        ts_aggregate, ts_resample = await _timescale_reads(ctx.timescale)
        reads += [
            Result(
                COARSE_READ + ", TimescaleDB aggregates",
                ts_aggregate,
                ts_resample,
                "s",
                "resampling the 1m candles on TimescaleDB",
                higher_is_better=False,
            ),
            Result(
                COARSE_READ + ", TimescaleDB aggregates",
                ts_aggregate,
                native_rollup,
                "s",
                "plain PostgreSQL rollup table",
                higher_is_better=False,
            ),
        ]
    return [
        *reads,
        Result(
            f"rollup refresh after 1 new day x {SYMBOLS} symbols",
            incremental_s,
            scratch_s,
            "s",
            f"recompute all {scratch.days} symbol-days",
            higher_is_better=False,
        ),
    ]
