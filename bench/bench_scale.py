"""Beyond one server, on this one machine (so it shows the overhead of routing and
pooling, not added capacity): servers of the benchmark's own, a private primary and two
streaming replicas (pg_basebackup), and a PgBouncer in transaction pooling mode.

- history reads (a 1-day slice of 1m candles, 8 tasks, no Redis range cache) per second
  with 1 and 2 replicas, against the same reads with no replica (the primary alone);
- the order cycle (create, fill, open, close; 8 tasks) through PgBouncer, against the
  same cycle on a direct connection.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from tests.servers import PgBouncer, PostgresServer, replica_of, wait_for_count

from bench.bench_trading import _cycles
from bench.harness import BenchContext, Result
from tradestore import TradeStore
from tradestore.settings import Settings

SERIES = 10
DAYS = 7
TASKS = 8
READ_S = 5.0
START = datetime(2024, 1, 1, tzinfo=UTC)


def _candles(n: int) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": START + timedelta(minutes=i),
            "open": "100",
            "high": "101",
            "low": "99",
            "close": "100.5",
            "volume": "1",
        }
        for i in range(n)
    ]


def _settings(ctx: BenchContext, url: str, **extra: Any) -> Settings:
    return ctx.settings.model_copy(
        update={
            "database_url": _secret(url),
            "timeseries_mode": "native",
            "pool_max_size": 20,
            "event_relay": False,
            "redis_url": None,  # no range cache: every read reaches a server
            **extra,
        }
    )


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


async def _reads_per_s(settings: Settings, symbols: list[str]) -> float:
    rng = np.random.default_rng(3)
    async with TradeStore(settings) as store:
        done = 0
        deadline = time.monotonic() + READ_S

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                symbol = symbols[int(rng.integers(len(symbols)))]
                day = START + timedelta(days=int(rng.integers(DAYS - 1)))
                await store.market_data.get_historical_data(
                    symbol, "1m", day, day + timedelta(days=1)
                )
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(TASKS)))
        return done / (time.monotonic() - started)


async def run(ctx: BenchContext) -> list[Result]:
    primary = PostgresServer(settings={"max_wal_senders": "5", "wal_level": "replica"})
    servers = [primary]
    bouncer: PgBouncer | None = None
    try:
        primary.start()
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = primary.database_url("bench")
        symbols = [f"SC{uuid.uuid4().hex[:6].upper()}-USD" for _ in range(SERIES)]
        async with TradeStore(_settings(ctx, url)) as store:
            await store.migrate()
            for symbol in symbols:
                await store.market_data.store_candles(symbol, "1m", _candles(DAYS * 1440))
        replicas = [replica_of(primary), replica_of(primary)]
        servers += replicas
        replica_urls = [r.database_url("bench") for r in replicas]
        for replica_url in replica_urls:
            await asyncio.to_thread(
                wait_for_count,
                replica_url,
                "SELECT count(*) FROM market_data",
                (),
                SERIES * DAYS * 1440,
            )
        alone = await _reads_per_s(_settings(ctx, url), symbols)
        one = await _reads_per_s(
            _settings(ctx, url, database_replica_urls=_secret(replica_urls[0])), symbols
        )
        two = await _reads_per_s(
            _settings(ctx, url, database_replica_urls=_secret(",".join(replica_urls))), symbols
        )
        bouncer = PgBouncer("127.0.0.1", primary.port)
        bouncer.start()
        async with TradeStore(_settings(ctx, url)) as direct_store:
            direct = await _cycles(direct_store)
        through = _settings(
            ctx, bouncer.url("bench"), database_direct_url=_secret(url), pgbouncer=True
        )
        async with TradeStore(through) as pooled_store:
            pooled = await _cycles(pooled_store)
    finally:
        if bouncer is not None:
            bouncer.stop()
        for server in reversed(servers):
            server.destroy()
    reads = "1-day slices of 1m candles, 8 tasks"
    return [
        Result(
            f"history reads with 1 replica ({reads})", one, alone, "reads/s", "the primary alone"
        ),
        Result(
            f"history reads with 2 replicas ({reads})", two, alone, "reads/s", "the primary alone"
        ),
        Result(
            "order cycle through PgBouncer (transaction pooling), 8 tasks",
            pooled,
            direct,
            "cycles/s",
            "the same cycle on direct connections",
        ),
    ]
