"""Backfilling from an exchange source, against a local dYdX-indexer-shaped server (the
tests' replay server, in a process of its own; no network).

1. 200,000 1m candles with the rate limit lifted: candles/s, against the raw ingest rate
   of the same candles (store_candles of the same dicts) in the same run: the client side
   (HTTP, JSON, conversion, paging) must not be the bottleneck (target >= 0.7x).
   The same through CCXT (source ccxt:binance) from a local Binance-shaped server, where
   CCXT's own parsing of each candle is in the client's path.
2. With tradestore's limiter at N requests/s against a server that allows N: achieved
   requests/s against N (target within 5%), and the 429s the server had to send (target 0).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from tests.exchange.binance_replay import Binance, recorded_klines
from tests.exchange.replay import Indexer, recorded_candles, running_apart

from bench.harness import BenchContext, Result
from tradestore.exchange.backfill import backfill
from tradestore.exchange.ccxt_source import CcxtExchange, new_exchange
from tradestore.exchange.dydx import DydxIndexer, to_candle
from tradestore.exchange.retry import RetryPolicy

CANDLES = 200_000
LIMITED_PAGES = 60
LIMIT_PER_S = 10.0
START = datetime(2024, 1, 1, tzinfo=UTC)


async def run(ctx: BenchContext) -> list[Result]:
    store = ctx.store
    fast_symbol, raw_symbol, slow_symbol = (
        f"{p}{uuid.uuid4().hex[:6].upper()}-USD" for p in ("EXF", "EXR", "EXS")
    )
    limited_candles = LIMITED_PAGES * 1000
    indexer = Indexer()
    indexer.add(recorded_candles(fast_symbol, START, CANDLES))
    indexer.add(recorded_candles(slow_symbol, START, limited_candles))
    raw = [to_candle(c) for c in recorded_candles(raw_symbol, START, CANDLES)]
    started = time.perf_counter()
    await store.market_data.store_candles(raw_symbol, "1m", raw)
    ingest_rate = CANDLES / (time.perf_counter() - started)
    with running_apart(indexer) as url:
        unlimited = store.rate_limiter.token_bucket(
            f"bench:{uuid.uuid4().hex}", rate=1e6, burst=1e6
        )
        source = DydxIndexer(url, unlimited, retry=RetryPolicy(base_s=0.05))
        started = time.perf_counter()
        result = await backfill(
            store.market_data, source, fast_symbol, "1m", START, START + timedelta(minutes=CANDLES)
        )
        backfill_rate = result.fetched / (time.perf_counter() - started)
        assert result.inserted == CANDLES, result
        await source.client.post(f"{url}/limit", params={"per_s": LIMIT_PER_S})
        bucket = store.rate_limiter.token_bucket(
            f"bench:{uuid.uuid4().hex}", rate=LIMIT_PER_S, burst=1
        )
        limited = DydxIndexer(url, bucket, retry=RetryPolicy(base_s=0.05))
        before = (await source.client.get(f"{url}/stats")).json()
        started = time.perf_counter()
        await backfill(
            store.market_data,
            limited,
            slow_symbol,
            "1m",
            START,
            START + timedelta(minutes=limited_candles),
        )
        elapsed = time.perf_counter() - started
        after = (await source.client.get(f"{url}/stats")).json()
        achieved = (after["requests"] - before["requests"]) / elapsed
        rejected = after["rejected"] - before["rejected"]
        await source.aclose()
        await limited.aclose()
    ccxt_rate = await _ccxt_backfill_rate(ctx)
    return [
        Result(
            f"backfill {CANDLES:,} 1m candles from a local indexer, no rate limit",
            backfill_rate,
            ingest_rate,
            "candles/s",
            "store_candles of the same candles",
        ),
        Result(
            f"backfill at a limit of {LIMIT_PER_S:g} requests/s ({rejected} 429s from the server)",
            achieved,
            LIMIT_PER_S,
            "requests/s",
            "the limit (target: within 5%, zero 429s)",
        ),
        Result(
            f"backfill {CANDLES:,} 1m candles through CCXT (ccxt:binance), no rate limit",
            ccxt_rate,
            ingest_rate,
            "candles/s",
            "store_candles of the same candles",
        ),
    ]


async def _ccxt_backfill_rate(ctx: BenchContext) -> float:
    base = f"EXC{uuid.uuid4().hex[:6].upper()}"
    binance = Binance()
    binance.add(f"{base}USDT", "1m", recorded_klines(START, CANDLES))
    with running_apart(binance) as url:
        exchange = new_exchange("binance", {"enableRateLimit": False}, url)
        unlimited = ctx.store.rate_limiter.token_bucket(
            f"bench:{uuid.uuid4().hex}", rate=1e6, burst=1e6
        )
        source = CcxtExchange(exchange, unlimited, retry=RetryPolicy(base_s=0.05))
        try:
            await source.open()
            started = time.perf_counter()
            result = await backfill(
                ctx.store.market_data,
                source,
                f"{base}/USDT",
                "1m",
                START,
                START + timedelta(minutes=CANDLES),
            )
            rate = result.fetched / (time.perf_counter() - started)
            assert result.inserted == CANDLES, result
        finally:
            await source.aclose()
    return rate
