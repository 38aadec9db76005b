"""Notifications end to end: outbox -> relay -> Redis stream / pub/sub -> consumers."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import make_settings
from tests.servers import RedisServer
from tests.trading.helpers import new_strategy
from tradestore import TradeStore
from tradestore.realtime.bus import Event


@pytest.fixture
def bus_store(fresh_store: TradeStore) -> TradeStore:
    return fresh_store


async def make_orders(store: TradeStore, n: int) -> None:
    strategy = await new_strategy(store)
    for _ in range(n):
        await store.orders.create(
            {
                "strategy_id": strategy.id,
                "symbol": "BTC-USD",
                "side": "BUY",
                "type": "MARKET",
                "quantity": "1",
            }
        )


async def outbox_ids(store: TradeStore) -> set[int]:
    return {r["id"] for r in await store.db.query("SELECT id FROM event_outbox")}


async def stream_ids(store: TradeStore) -> list[int]:
    client = store.redis.client
    assert client is not None
    return [int(fields[b"outbox_id"]) for _, fields in await client.xrange(store.events.stream)]


async def take(events: AsyncIterator[Event], n: int, within_s: float = 10.0) -> list[Event]:
    got: list[Event] = []

    async def collect() -> None:
        async for event in events:
            got.append(event)
            if len(got) == n:
                return

    await asyncio.wait_for(collect(), within_s)
    return got


async def test_relay_delivers_to_stream_and_live_listeners(bus_store: TradeStore) -> None:
    live = bus_store.events.subscribe({"order.created"})
    first = asyncio.ensure_future(take(live, 3))
    await asyncio.sleep(0.2)  # subscribed
    await make_orders(bus_store, 3)
    assert await bus_store.events.publish_pending() == 4  # strategy.updated + 3 orders
    received = await first
    assert [e.type for e in received] == ["order.created"] * 3
    assert received[0].payload["symbol"] == "BTC-USD"
    assert sorted(await stream_ids(bus_store)) == sorted(await outbox_ids(bus_store))
    backlog = await bus_store.events.backlog()
    assert backlog["pending"] == 0
    replayed = [
        e
        async for e in bus_store.events.replay(
            datetime.now(UTC) - timedelta(minutes=1), types={"strategy.updated"}
        )
    ]
    assert len(replayed) == 1


async def test_consumer_restart_gets_unacknowledged_events_again(bus_store: TradeStore) -> None:
    consumer = bus_store.events.consume("risk", "worker-1", start="0")
    await make_orders(bus_store, 3)
    await bus_store.events.publish_pending()
    events = await take(consumer, 4)
    await bus_store.events.ack("risk", events[0])  # the rest were in flight at the "crash"
    await consumer.aclose()
    restarted = bus_store.events.consume("risk", "worker-1", start="0")
    again = await take(restarted, 3)
    assert [e.outbox_id for e in again] == [e.outbox_id for e in events[1:]]
    for event in again:
        await bus_store.events.ack("risk", event)
    await restarted.aclose()


async def test_pending_entries_trimmed_from_the_stream_do_not_stall_a_consumer(
    bus_store: TradeStore,
) -> None:
    consumer = bus_store.events.consume("risk", "worker-1", start="0")
    await make_orders(bus_store, 3)
    await bus_store.events.publish_pending()
    await take(consumer, 4)  # delivered, never acknowledged: pending
    await consumer.aclose()
    client = bus_store.redis.client
    assert client is not None
    await client.xtrim(bus_store.events.stream, maxlen=0)  # MAXLEN ~ trimmed them away
    await make_orders(bus_store, 1)
    await bus_store.events.publish_pending()
    for _ in range(2):  # every restart: the trimmed entries cost nothing, new events arrive
        restarted = bus_store.events.consume("risk", "worker-1", start="0", block_ms=200)
        fresh = await take(restarted, 2)  # a new strategy, and its order
        assert {e.type for e in fresh} == {"strategy.updated", "order.created"}
        await restarted.aclose()
    assert bus_store.events.trimmed == 4  # acknowledged on the first restart, counted once
    pending = await client.xpending(bus_store.events.stream, "risk")
    assert pending["pending"] == 2  # only the two fresh, unacknowledged events


async def test_no_event_lost_when_relays_die_mid_batch(bus_store: TradeStore) -> None:
    settings_url = bus_store.settings.postgres_conninfo()
    writer = asyncio.ensure_future(make_orders(bus_store, 60))
    rng = random.Random(7)
    while not writer.done():
        bus_store.events.start_relay(settings_url, poll_s=0.05)
        await asyncio.sleep(rng.uniform(0.0, 0.05))
        await bus_store.events.stop_relay()  # killed wherever it was
    await writer
    while await bus_store.events.publish_pending() > 0:
        pass
    delivered = await stream_ids(bus_store)
    assert set(delivered) == await outbox_ids(bus_store)  # nothing lost (duplicates allowed)
    assert (await bus_store.events.backlog())["pending"] == 0


async def test_redis_killed_and_restarted_mid_operation(
    empty_database: Callable[[], str], redis_server: RedisServer
) -> None:
    url = empty_database()
    settings = make_settings(url, redis_url=redis_server.url, redis_timeout_s=0.3)
    async with TradeStore(settings) as store:
        await store.migrate()
        store.events.start_relay(url, poll_s=0.1)
        consumer = store.events.consume("audit", "a1", start="0", block_ms=200)
        await make_orders(store, 5)
        before = await take(consumer, 6)
        for _ in range(100):  # the relay marks its batch published just after the XADD
            if (await store.events.backlog())["pending"] == 0:
                break
            await asyncio.sleep(0.05)
        redis_server.kill()
        await make_orders(store, 5)  # PostgreSQL writes carry on while Redis is down
        await asyncio.sleep(0.5)
        assert (await store.events.backlog())["pending"] == 6
        redis_server.start()  # a fresh, empty Redis on the same port
        after = await take(consumer, 6, within_s=20)
        received = {e.outbox_id for e in before} | {e.outbox_id for e in after}
        assert received == await outbox_ids(store)
        await consumer.aclose()
        await store.events.stop_relay()


async def _cancel_at_random_points(
    store: TradeStore, loop: Callable[[], AsyncIterator[Event]]
) -> int:
    """Start `loop` in a task and cancel it once, many times: after 0, 1, 2, ... turns of
    the event loop (every step of connecting and subscribing), then at random moments; how
    many of those tasks had not ended a second later (the cancellation was lost). A
    collection after each one reports a connection the cancelled task left unclosed (a
    ResourceWarning, which fails the test) here rather than in a later test."""

    async def drain() -> None:
        async for _ in loop():
            pass

    async def after_turns(turns: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)

    stuck = 0
    waits = [after_turns(turns) for turns in range(60)]
    waits += [asyncio.sleep(random.uniform(0.0, 0.12)) for _ in range(120)]
    for wait in waits:
        task = asyncio.create_task(drain())
        await wait
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=1.0)
        if not done:
            stuck += 1
            while not task.done():  # clean up: cancel until it goes
                task.cancel()
                await asyncio.wait({task}, timeout=0.05)
        gc.collect()
    return stuck


async def test_a_cancelled_consumer_or_subscriber_ends_wherever_the_cancel_lands(
    bus_store: TradeStore,
) -> None:
    """redis-py can swallow a cancellation that lands while a reply is read; a consumer
    task cancelled once must end all the same (it used to block a test's teardown), and
    leave no connection open (a subscribe cancelled while connecting to a cluster node
    used to leave it in the pool of a node client nobody closed)."""
    events = bus_store.events
    consumers = await _cancel_at_random_points(
        bus_store, lambda: events.consume("cancel", "w1", block_ms=20)
    )
    subscribers = await _cancel_at_random_points(bus_store, lambda: events.subscribe())
    assert (consumers, subscribers) == (0, 0)
