"""Refreshing rollups after one day of new 1m candles for 100 symbols, against
recomputing every rollup from scratch, in the same run (plain PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np

from bench.harness import BenchContext, Result

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


async def run(ctx: BenchContext) -> list[Result]:
    store = ctx.store
    md = store.market_data
    for s in range(SYMBOLS):
        history = np.concatenate([_day(d, s * 100 + d) for d in range(HISTORY_DAYS)])
        await md.store_candles(f"RB{s:03d}-USD", "1m", history)
    rollups = await store.rollups()
    await rollups.refresh()
    for s in range(SYMBOLS):  # one new day for every symbol
        await md.store_candles(f"RB{s:03d}-USD", "1m", _day(HISTORY_DAYS, s * 100 + 99))
    started = time.perf_counter()
    incremental = await rollups.refresh()
    incremental_s = time.perf_counter() - started
    await store.db.execute("TRUNCATE market_data_rollup")
    await store.db.execute(
        "INSERT INTO rollup_dirty (symbol, day) SELECT DISTINCT symbol, "
        "(timestamp AT TIME ZONE 'UTC')::date FROM market_data WHERE timeframe = '1m' "
        "ON CONFLICT DO NOTHING"
    )
    started = time.perf_counter()
    scratch = await rollups.refresh()
    scratch_s = time.perf_counter() - started
    assert incremental.days == SYMBOLS and scratch.days >= SYMBOLS * (HISTORY_DAYS + 1)
    return [
        Result(
            f"rollup refresh after 1 new day x {SYMBOLS} symbols",
            incremental_s,
            scratch_s,
            "s",
            f"recompute all {scratch.days} symbol-days",
            higher_is_better=False,
        )
    ]
