"""Faults under load: a private Redis and a private PostgreSQL are killed and restarted
while the relay, the cache listener and a consumer run. Nothing committed is lost, the
loops recover by themselves, and errors during the outage say what is wrong."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

from tests.conftest import delete_keys, make_settings
from tests.servers import PostgresServer, RedisServer
from tests.trading.helpers import new_strategy
from tests.waiting import eventually
from tradestore import TradeStore, TradeStoreError
from tradestore.errors import DatabaseUnavailable, PoolExhausted


async def outbox_ids(store: TradeStore) -> set[int]:
    return {r["id"] for r in await store.db.query("SELECT id FROM event_outbox")}


class Orders:
    """Writes orders (each one outbox event) until stopped; records every error."""

    def __init__(self, store: TradeStore) -> None:
        self.store = store
        self.errors: list[TradeStoreError] = []
        self.written = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        strategy = await new_strategy(self.store)
        order = {"strategy_id": strategy.id, "symbol": "BTC-USD", "side": "BUY"}
        while not self._stop.is_set():
            try:
                await self.store.orders.create({**order, "type": "MARKET", "quantity": "1"})
                self.written += 1
            except TradeStoreError as exc:
                self.errors.append(exc)
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()


class Received:
    """A consumer of the stream that acknowledges and records every event it gets."""

    def __init__(self, store: TradeStore, group: str) -> None:
        self.ids: set[int] = set()
        self.store, self.group = store, group

    async def run(self) -> None:
        async for event in self.store.events.consume(self.group, "w1", block_ms=200):
            self.ids.add(event.outbox_id)
            await self.store.events.ack(self.group, event)

    async def until(self, expected: set[int], within_s: float) -> float:
        return await eventually(lambda: expected <= self.ids, within_s)


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_redis_restarts_lose_no_event_and_the_cache_listener_recovers(
    empty_database: Callable[[], str], redis_server: RedisServer
) -> None:
    url = empty_database()
    settings = make_settings(url, redis_url=redis_server.url, redis_timeout_s=0.3)
    async with TradeStore(settings) as setup:
        await setup.migrate()
    relaying = settings.model_copy(update={"event_relay": True})
    async with TradeStore(relaying) as store, TradeStore(settings) as other:
        received = Received(other, "risk")  # a group made at "$", the default
        consumer = asyncio.create_task(received.run())
        await asyncio.sleep(0.3)
        orders = Orders(store)
        producer = asyncio.create_task(orders.run())
        for outage_s in (1.0, 3.0):
            await asyncio.sleep(1.0)
            redis_server.kill()
            await asyncio.sleep(outage_s)
            redis_server.start()  # empty: the stream and the group are gone
        await asyncio.sleep(0.5)
        orders.stop()
        await producer
        expected = await outbox_ids(store)
        await received.until(expected, within_s=15)
        await stop_task(consumer)
        assert orders.errors == []  # PostgreSQL writes never stopped
        assert len(expected) == orders.written + 1  # +1: strategy.created
        assert expected - received.ids == set(), "events never delivered"
        assert store.events.relay is not None and store.events.relay.health().ok

        # the invalidation listener is back: another process's write reaches our L1
        key = f"fault:{uuid.uuid4().hex}"
        assert await store.cache.get_or_load(key, _value("old")) == "old"
        await eventually(lambda: store.cache.listener.health().state == "running", 5)
        await other.cache.invalidate(key)
        await eventually(lambda: store.cache.local.get(key) is None, 5)
        assert store.cache.local.get(key) is None
    delete_keys(settings.redis_key_prefix, redis_server.url)


async def test_relay_survives_postgres_restarts_and_errors_say_the_server_is_down(
    postgres_server: PostgresServer,
) -> None:
    settings = make_settings(
        postgres_server.url, connect_timeout_s=1.0, pool_max_size=4, timeseries_mode="auto"
    )
    async with TradeStore(settings) as setup:
        await setup.migrate()
    relaying = settings.model_copy(update={"event_relay": True})
    async with TradeStore(relaying) as store, TradeStore(settings) as other:
        received = Received(other, "audit")
        consumer = asyncio.create_task(received.run())
        await asyncio.sleep(0.3)
        orders = Orders(store)
        producer = asyncio.create_task(orders.run())
        for _ in range(3):
            await asyncio.sleep(1.0)
            postgres_server.stop("fast")
            await asyncio.sleep(1.0)
            postgres_server.start()
        await asyncio.sleep(0.5)
        orders.stop()
        await producer
        expected = await outbox_ids(store)
        took = await received.until(expected, within_s=10)
        await stop_task(consumer)
        assert expected - received.ids == set(), "events never relayed"
        assert took < 5.0, f"the relay took {took:.1f} s to catch up"
        # a consumer sees an event when it is XADDed, just before the relay's transaction
        # marks it published: give that commit a moment
        for _ in range(100):
            pending = (await store.events.backlog())["pending"]
            if pending == 0:
                break
            await asyncio.sleep(0.05)
        assert pending == 0
        assert orders.errors, "the outages were not noticed"
        assert not [e for e in orders.errors if isinstance(e, PoolExhausted)], [
            str(e) for e in orders.errors if isinstance(e, PoolExhausted)
        ]
        assert any(isinstance(e, DatabaseUnavailable) for e in orders.errors)
    delete_keys(settings.redis_key_prefix)


def _value(value: str) -> Callable[[], asyncio.Future[str]]:
    def load() -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        return future

    return load
