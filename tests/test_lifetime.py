"""A store's lifetime: open and close many times, every close bounded, nothing left
behind (no task, no connection, no file descriptor), and open again after close."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

from tests.conftest import delete_keys, make_settings
from tests.servers import PostgresServer, RedisServer, free_port
from tests.trading.helpers import new_strategy
from tradestore import Settings, TradeStore

STORES = 200


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def backend_count(store: TradeStore, application_name: str) -> int:
    value = await store.db.query_value(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> "
        "pg_backend_pid()",
        (application_name,),
    )
    return int(value)


async def test_open_and_close_200_stores_with_redis_leaves_nothing_behind(
    migrated_db_url: str,
) -> None:
    app = f"lifetime-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        f"{migrated_db_url}?application_name={app}", event_relay=True, pool_min_size=1
    )
    async with TradeStore(settings):  # warm up imports, Lua scripts, DNS
        pass
    fds_before = open_fds()
    tasks_before = asyncio.all_tasks()
    slowest_close = 0.0
    for i in range(STORES):
        store = TradeStore(settings)
        await store.open()
        if i % 2:
            await store.rate_limiter.status("lifetime")
        else:
            await store.sessions.of_user("nobody")
        started = time.perf_counter()
        await store.close()
        slowest_close = max(slowest_close, time.perf_counter() - started)
    await asyncio.sleep(0.1)  # let the server notice the last disconnections
    assert slowest_close < 2.0, f"slowest close took {slowest_close:.2f} s"
    assert asyncio.all_tasks() == tasks_before
    assert open_fds() <= fds_before
    async with TradeStore(make_settings(migrated_db_url)) as observer:
        assert await backend_count(observer, app) == 0
    delete_keys(settings.redis_key_prefix)


async def test_a_store_opens_again_after_close(settings: Settings) -> None:
    store = TradeStore(settings)
    async with store:
        first = await new_strategy(store)
    async with store:  # repositories must not keep the closed pool
        again = await store.strategies.get(first.id)
        assert again.name == first.name
        assert (await store.health()).ok


async def test_close_is_bounded_when_both_servers_are_gone() -> None:
    postgres, redis_server = PostgresServer(), RedisServer(port=free_port())
    postgres.start()
    redis_server.start()
    try:
        settings = make_settings(
            postgres.url,
            redis_url=redis_server.url,
            event_relay=True,
            redis_timeout_s=0.5,
            timeseries_mode="auto",
        )
        store = TradeStore(settings)
        await store.open()
        await store.migrate()
        await asyncio.sleep(0.3)  # the relay and the cache listener are running
        redis_server.kill()
        postgres.stop("immediate")
        started = time.perf_counter()
        await store.close()  # must not raise, must not hang
        assert time.perf_counter() - started < 2.0
    finally:
        redis_server.kill()
        postgres.destroy()
