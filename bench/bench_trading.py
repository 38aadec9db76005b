"""Trading cycle throughput and cached reads.

1. order -> fill and trade open (one transaction: orders.fill_and_open) -> trade close,
   8 concurrent tasks, as cycles/s, against the raw rate of the single-row INSERT
   transactions a cycle's four steps would be (4 per cycle, 8 concurrent connections).
2. cached get-by-id: an L1 hit and an L2 hit, against a bare redis-py GET.

The cycle and its baseline run in alternating rounds, the median of each.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import psycopg
import redis.asyncio as aioredis

from bench.harness import BenchContext, Result, timed, timed_pair
from tradestore import TradeStore

TASKS = 8
CYCLES_PER_TASK = 60
INSERTS_PER_CYCLE = 4
ROUNDS = 5


async def _cycles(store: TradeStore) -> float:
    strategy = await store.strategies.create(
        {
            "name": f"bench-{uuid.uuid4().hex[:8]}",
            "version": "1",
            "config": {},
            "timeframe": "1m",
            "symbols": ["BTC-USD"],
        }
    )

    async def worker() -> None:
        for _ in range(CYCLES_PER_TASK):
            order = await store.orders.create(
                {
                    "strategy_id": strategy.id,
                    "symbol": "BTC-USD",
                    "side": "BUY",
                    "type": "MARKET",
                    "quantity": "1",
                    "client_order_id": uuid.uuid4().hex,
                }
            )
            _, trade = await store.orders.fill_and_open(
                order.id, quantity="1", price="100", fee="0.1"
            )
            await store.trades.close(trade.id, exit_price="101", exit_reason="SIGNAL")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return TASKS * CYCLES_PER_TASK / (time.perf_counter() - started)


async def _raw_inserts(db_url: str) -> float:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_raw (id uuid, v numeric(18,8))")

    async def worker() -> None:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            for _ in range(CYCLES_PER_TASK * INSERTS_PER_CYCLE):
                async with conn.transaction():
                    await conn.execute("INSERT INTO bench_raw VALUES (%s, %s)", (uuid.uuid4(), 100))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    transactions_per_s = (
        TASKS * CYCLES_PER_TASK * INSERTS_PER_CYCLE / (time.perf_counter() - started)
    )
    return transactions_per_s / INSERTS_PER_CYCLE  # as "cycles" of 4 transactions


async def _cached_gets(ctx: BenchContext) -> list[Result]:
    store = ctx.store
    strategy = await store.strategies.create(
        {
            "name": f"bench-get-{uuid.uuid4().hex[:8]}",
            "version": "1",
            "config": {"a": 1},
            "timeframe": "1m",
            "symbols": ["BTC-USD"],
        }
    )
    await store.strategies.get(strategy.id)
    l1 = await timed(20_000, lambda: store.strategies.get(strategy.id))

    async def l2_get() -> object:
        store.cache.local.clear()
        return await store.strategies.get(strategy.id)

    client = aioredis.Redis.from_url(ctx.redis_url)
    key = f"{ctx.settings.redis_key_prefix}bench-raw"
    await client.set(key, b"x" * 600)
    l2, raw = await timed_pair(3500, l2_get, lambda: client.get(key))
    await client.delete(key)
    await client.aclose()
    return [
        Result(
            "strategy get, L1 hit",
            l1 * 1e6,
            raw * 1e6,
            "µs/op",
            "bare redis-py GET",
            higher_is_better=False,
        ),
        Result(
            "strategy get, L2 hit",
            l2 * 1e6,
            raw * 1e6,
            "µs/op",
            "bare redis-py GET",
            higher_is_better=False,
        ),
    ]


async def run(ctx: BenchContext) -> list[Result]:
    # alternating rounds, the median of each: the machine's speed drifts between runs
    ours_rounds, raw_rounds = [], []
    for _ in range(ROUNDS):
        ours_rounds.append(await _cycles(ctx.store))
        raw_rounds.append(await _raw_inserts(ctx.db_url))
    cycles, raw = statistics.median(ours_rounds), statistics.median(raw_rounds)
    return [
        Result(
            "order→fill→open→close cycle, 8 tasks",
            cycles,
            raw,
            "cycles/s",
            "4 raw single-row INSERT transactions per cycle, 8 conns",
        ),
        *await _cached_gets(ctx),
    ]
