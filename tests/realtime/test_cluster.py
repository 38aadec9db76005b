"""tradestore on a real Redis Cluster: 3 masters with a replica each, started here.

The whole realtime and cache suites also run on a cluster in CI
(TRADESTORE_TEST_REDIS_CLUSTER=1); these tests check what only a cluster can show: keys
that a script touches together share a slot, and a master failover leaves every service
working with nothing lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.conftest import delete_keys, make_settings
from tests.marketdata.helpers import candles, new_symbol
from tests.realtime.test_bus import make_orders, take
from tests.servers import RedisClusterServer
from tests.trading.helpers import new_strategy
from tradestore import ConfigurationError, TradeStore
from tradestore.keys import Keys
from tradestore.settings import Settings, load_settings


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    server = RedisClusterServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def cluster_store(
    empty_database: Callable[[], str], cluster: RedisClusterServer
) -> AsyncIterator[TradeStore]:
    settings = make_settings(empty_database(), redis_url=cluster.url)
    async with TradeStore(settings) as store:
        await store.migrate()
        yield store
    delete_keys(settings.redis_key_prefix, cluster.url)


def slot(cluster: RedisClusterServer, key: str) -> int:
    return int(redis.Redis(port=cluster.nodes[0].port).cluster("KEYSLOT", key))


async def test_keys_of_one_script_share_a_slot_and_series_spread_over_masters(
    cluster_store: TradeStore, cluster: RedisClusterServer
) -> None:
    state, cache, bus = cluster_store.strategy_state, cluster_store.cache, cluster_store.events
    strategies = [uuid.uuid4() for _ in range(20)]
    for strategy_id in strategies:
        value_key, versions_key = state._keys(strategy_id, "position:{odd}:key")
        assert slot(cluster, value_key) == slot(cluster, versions_key)
    for name in ("strategy:1", "a}b{c", "{", "x" * 300):
        assert slot(cluster, cache._value_key(name)) == slot(cluster, cache._version_key(name))
    assert slot(cluster, bus.stream) == slot(cluster, bus.epoch_key)
    spread = {cluster.master_of(state._versions_key(s)).port for s in strategies}
    assert len(spread) == 3  # tags are per strategy, not one slot for everything
    with pytest.raises(ValueError, match="empty"):
        Keys("p:").tagged("state", "")


async def test_every_service_works_on_the_cluster(cluster_store: TradeStore) -> None:
    store = cluster_store
    strategy = await new_strategy(store)
    assert await store.strategy_state.set(strategy.id, "k", {"n": 1}, expected_version=0) == 1
    assert await store.strategy_state.set(strategy.id, "k", {"n": 2}, expected_version=1) == 2
    assert (await store.strategy_state.items(strategy.id))["k"].value == {"n": 2}
    assert await store.strategy_state.snapshot(strategy.id) == 1
    token, _ = await store.sessions.create("trader-1", {"desk": "a"}, ttl_s=60)
    await store.sessions.create("trader-1", ttl_s=60)
    assert await store.sessions.touch(token) is not None
    assert await store.sessions.revoke_all("trader-1") == 2
    assert await store.sessions.get(token) is None
    limit = store.rate_limiter.token_bucket("venue:key", rate=1, burst=3)
    decisions = [await limit.try_acquire() for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert all(d.shared for d in decisions)  # decided by the cluster, not the fallback
    metrics = await store.monitor.collect()
    assert metrics.redis["configured"] and metrics.redis["cluster_masters"] == 3


async def test_cached_ranges_and_latest_candle_on_the_cluster(cluster_store: TradeStore) -> None:
    symbol, t0 = new_symbol(), datetime(2024, 1, 1, tzinfo=UTC)
    await cluster_store.market_data.store_candles(symbol, "1m", candles(30))
    end = t0 + timedelta(minutes=30)
    first = await cluster_store.market_data.get_historical_data(symbol, "1m", t0, end)
    again = await cluster_store.market_data.get_historical_data(symbol, "1m", t0, end)
    assert len(first) == len(again) == 30
    latest = await cluster_store.latest.get_candle(symbol, "1m")
    assert latest is not None and latest["timestamp"] == t0 + timedelta(minutes=29)


async def test_a_master_failover_loses_nothing(
    cluster_store: TradeStore, cluster: RedisClusterServer
) -> None:
    """CLUSTER FAILOVER of the masters holding the event stream and a strategy's state,
    while a consumer group, a live subscriber and a second process's cache are in use."""
    store = cluster_store
    other = TradeStore(store.settings)
    await other.open()
    try:
        strategy = await new_strategy(store)
        version = await store.strategy_state.set(strategy.id, "pos", 1)
        group = store.events.consume("risk", "c1", start="0")
        live = store.events.subscribe({"order.created"})
        await make_orders(store, 3)
        assert await store.events.publish_pending() >= 3
        before = await take(group, 5)  # 2 strategies created + 3 orders
        for event in before:
            await store.events.ack("risk", event)
        loaded = await other.strategies.get(strategy.id)  # cached in the other process

        for key in {store.events.stream, store.strategy_state._versions_key(strategy.id)}:
            cluster.failover(cluster.master_of(key))

        assert await store.strategy_state.set(strategy.id, "pos", 2, expected_version=version)
        receiving = asyncio.ensure_future(take(live, 2, within_s=30))
        await asyncio.sleep(1.5)  # the subscriber subscribes (again) on some node
        await make_orders(store, 2)
        assert await store.events.publish_pending() >= 2
        after = await take(group, 3, within_s=30)  # a strategy created + 2 orders
        seen = {e.outbox_id for e in before} | {e.outbox_id for e in after}
        outbox = {r["id"] for r in await store.db.query("SELECT id FROM event_outbox")}
        assert seen == outbox  # none lost, none twice
        assert len(await receiving) == 2
        await store.strategies.update(strategy.id, description="after failover")
        await asyncio.sleep(0.5)
        reloaded = await other.strategies.get(strategy.id)
        assert reloaded.description == "after failover" != loaded.description
    finally:
        await other.close()


def test_cluster_urls_are_parsed_and_bad_ones_refused() -> None:
    settings = Settings(
        redis_url="redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001/0",  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.redis_is_cluster
    from tradestore.settings import cluster_nodes

    nodes, auth = cluster_nodes(settings.redis_connection_url() or "")
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert auth == {"ssl": False, "username": "app", "password": "s@cret"}
    assert Settings(redis_url="redis://h:1", redis_cluster=True, _env_file=None).redis_is_cluster  # type: ignore[arg-type, call-arg]
    for bad, why in [
        ("redis+cluster://h:1/3", "only database 0"),
        ("redis+cluster://h:port", "expected host:port"),
        ("redis+cluster:///0", "names no cluster node"),
    ]:
        with pytest.raises(ConfigurationError, match=why):
            load_settings(redis_url=bad, _env_file=None)
    with pytest.raises(ConfigurationError, match="TRADESTORE_REDIS_PREFIX"):
        load_settings(redis_key_prefix="app{1}:", _env_file=None)


async def test_a_cluster_down_falls_back_like_a_single_redis(
    empty_database: Callable[[], str],
) -> None:
    """A cluster URL whose nodes do not answer: tradestore opens, warns and degrades."""
    settings = make_settings(
        empty_database(), redis_url="redis+cluster://127.0.0.1:1", redis_timeout_s=0.3
    )
    async with TradeStore(settings) as store:
        await store.migrate()
        assert store.redis.degraded
        started = datetime.now(UTC)
        strategy = await new_strategy(store)
        assert (await store.strategies.get(strategy.id)).id == strategy.id
        assert datetime.now(UTC) - started < timedelta(seconds=30)
