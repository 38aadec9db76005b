"""Limiter decisions/s and event publish-to-receive latency, against raw redis-py.

- decisions: try_acquire on a token bucket (one EVALSHA) vs a raw INCR round trip;
- latency: an order created in PostgreSQL, relayed by the event relay and received by
  a pub/sub listener (p50, p99), vs a raw PUBLISH received by a raw listener.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import redis.asyncio as aioredis

from bench.harness import BenchContext, Result, timed

DECISIONS = 5000
EVENTS = 300


async def _decisions(ctx: BenchContext) -> Result:
    limit = ctx.store.rate_limiter.token_bucket("bench", rate=1e9, burst=1e9)
    ours = await timed(DECISIONS, limit.try_acquire)
    client = aioredis.Redis.from_url(ctx.redis_url)
    key = f"{ctx.settings.redis_key_prefix}raw-incr"
    raw = await timed(DECISIONS, lambda: client.incr(key))
    await client.delete(key)
    await client.aclose()
    return Result(
        "rate-limit decision (token bucket)", 1 / ours, 1 / raw, "decisions/s", "raw redis-py INCR"
    )


async def _our_latency(ctx: BenchContext) -> list[float]:
    store = ctx.store
    strategy = await store.strategies.create(
        {
            "name": f"bench-ev-{time.time_ns()}",
            "version": "1",
            "config": {},
            "timeframe": "1m",
            "symbols": ["BTC-USD"],
        }
    )
    store.events.start_relay(ctx.db_url, poll_s=0.5)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    listener = store.events.subscribe({"order.created"})

    async def receive() -> None:
        async for event in listener:
            latencies.append(time.perf_counter() - sent[event.payload["client_order_id"]])
            if len(latencies) == EVENTS:
                return

    task = asyncio.ensure_future(receive())
    await asyncio.sleep(0.3)
    for i in range(EVENTS):
        sent[f"ev{i}"] = time.perf_counter()
        await store.orders.create(
            {
                "strategy_id": strategy.id,
                "symbol": "BTC-USD",
                "side": "BUY",
                "type": "MARKET",
                "quantity": "1",
                "client_order_id": f"ev{i}",
            }
        )
        await asyncio.sleep(0.005)
    await asyncio.wait_for(task, 30)
    await store.events.stop_relay()
    return latencies


async def _raw_latency(ctx: BenchContext) -> list[float]:
    client = aioredis.Redis.from_url(ctx.redis_url)
    channel = f"{ctx.settings.redis_key_prefix}raw-channel"
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    latencies: list[float] = []
    sent: dict[bytes, float] = {}

    async def receive() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                latencies.append(time.perf_counter() - sent[message["data"]])
                if len(latencies) == EVENTS:
                    return

    task = asyncio.ensure_future(receive())
    await asyncio.sleep(0.2)
    for i in range(EVENTS):
        body = f"ev{i}".encode()
        sent[body] = time.perf_counter()
        await client.publish(channel, body)
        await asyncio.sleep(0.005)
    await asyncio.wait_for(task, 30)
    await pubsub.aclose()
    await client.aclose()
    return latencies


async def run(ctx: BenchContext) -> list[Result]:
    decisions = await _decisions(ctx)
    ours = np.array(await _our_latency(ctx)) * 1000
    raw = np.array(await _raw_latency(ctx)) * 1000
    return [
        decisions,
        Result(
            "event commit→receive latency p50",
            float(np.percentile(ours, 50)),
            float(np.percentile(raw, 50)),
            "ms",
            "raw PUBLISH→receive p50",
            higher_is_better=False,
        ),
        Result(
            "event commit→receive latency p99",
            float(np.percentile(ours, 99)),
            float(np.percentile(raw, 99)),
            "ms",
            "raw PUBLISH→receive p99",
            higher_is_better=False,
        ),
    ]
