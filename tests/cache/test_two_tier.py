"""The two-tier cache against real Redis: single flight, consistency, degradation."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import delete_keys, make_settings, raw_redis
from tests.servers import RedisServer
from tests.trading.helpers import new_strategy
from tradestore import TradeStore
from tradestore.cache import codec
from tradestore.trading.strategies import STRATEGY_JSON
from tradestore.trading.strategies import cache_key as strategy_key


def test_codec_keeps_decimal_datetime_uuid_exact() -> None:
    value = {
        "p": Decimal("0.12345678"),
        "t": datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        "u": uuid.uuid4(),
        "l": [Decimal("1E+2"), None, 1.5, "s"],
    }
    assert codec.loads(codec.dumps(value)) == value


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["$d", "$t", "$date", "$u", "$$d", "$", "a"]) | st.text(),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(JSON)
def test_codec_round_trips_any_json_including_keys_that_look_like_tags(value: object) -> None:
    assert codec.loads(codec.dumps(value)) == value


def test_a_user_dict_shaped_like_a_tag_stays_a_dict() -> None:
    config = {"p": {"$d": "abc"}, "$t": {"$u": "not-a-uuid"}, "$$x": 1}
    assert codec.loads(codec.dumps(config)) == config


async def test_single_flight_100_concurrent_misses_one_load(store: TradeStore) -> None:
    calls = 0

    async def loader() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"v": 1}

    key = f"sf:{uuid.uuid4()}"
    results = await asyncio.gather(*(store.cache.get_or_load(key, loader) for _ in range(100)))
    assert calls == 1 and all(r == {"v": 1} for r in results)


async def test_followers_take_over_when_the_leader_is_cancelled(store: TradeStore) -> None:
    key = f"t:{uuid.uuid4().hex}"
    started, calls = asyncio.Event(), 0

    async def slow_loader() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.2)
        return "value"

    leader = asyncio.create_task(store.cache.get_or_load(key, slow_loader))
    await started.wait()
    followers = [asyncio.create_task(store.cache.get_or_load(key, slow_loader)) for _ in range(5)]
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await asyncio.gather(*followers) == ["value"] * 5
    assert leader.cancelled()
    assert calls == 2  # the cancelled load, then one follower's, shared by all


async def test_strategy_get_hits_the_database_once(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    before = store.cache.stats["loads"]
    got = await asyncio.gather(*(store.strategies.get(strategy.id) for _ in range(100)))
    assert all(g == strategy for g in got)
    assert store.cache.stats["loads"] - before == 1


async def test_l2_serves_a_second_process_exactly(migrated_db_url: str) -> None:
    settings = make_settings(migrated_db_url)
    async with TradeStore(settings) as a, TradeStore(settings) as b:
        strategy = await new_strategy(a)
        await a.strategies.get(strategy.id)  # loads and fills L2
        hits = b.cache.stats["l2_hits"]
        assert await b.strategies.get(strategy.id) == strategy  # Decimal, datetime intact
        assert b.cache.stats["l2_hits"] == hits + 1
    delete_keys(settings.redis_key_prefix)


async def test_an_l2_hit_on_unchanged_bytes_reuses_the_value_changed_bytes_are_read(
    store: TradeStore,
) -> None:
    """An L1 entry that expired is read back from L2: the same bytes give the value
    decoded from them before (not decoded again); other bytes are decoded."""
    strategy = await new_strategy(store)
    first = await store.strategies.get(strategy.id)
    store.cache.local.clear()  # as when the L1 entry expires
    hits = store.cache.stats["l2_hits"]
    assert await store.strategies.get(strategy.id) is first
    assert store.cache.stats["l2_hits"] == hits + 1
    renamed = first.model_copy(update={"name": first.name + "-renamed"})
    client = raw_redis()
    try:
        client.set(
            store.cache._value_key(strategy_key(strategy.id)), STRATEGY_JSON.dump_json(renamed)
        )
    finally:
        client.close()
    store.cache.local.clear()
    got = await store.strategies.get(strategy.id)
    assert got == renamed and got is not first


async def test_an_unreadable_l2_entry_is_loaded_again_and_replaced(
    store: TradeStore, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry another version wrote (the old tagged codec) or garbage is a miss, not an
    error: the strategy comes from PostgreSQL and L2 holds a readable copy after."""
    strategy = await new_strategy(store)
    key = store.cache._value_key(strategy_key(strategy.id))
    client = raw_redis()
    try:
        for foreign in (codec.dumps(strategy), b"\xff not json"):
            client.set(key, foreign)
            store.cache.local.clear()
            loads = store.cache.stats["loads"]
            with caplog.at_level(logging.WARNING, logger="tradestore.cache.two_tier"):
                assert await store.strategies.get(strategy.id) == strategy
            assert store.cache.stats["loads"] == loads + 1
            assert "unreadable cache entry" in caplog.text
            assert client.get(key) not in (None, foreign)  # replaced by a readable copy
    finally:
        client.close()


async def test_writer_never_reads_old_value_and_others_see_new_within_a_second(
    migrated_db_url: str,
) -> None:
    settings = make_settings(migrated_db_url)
    async with TradeStore(settings) as a, TradeStore(settings) as b:
        strategy = await new_strategy(a)
        for store in (a, b):  # both have it in L1 now
            await store.strategies.get(strategy.id)
        for version in range(2, 12):
            await a.strategies.update(strategy.id, version=str(version))
            assert (await a.strategies.get(strategy.id)).version == str(version)
            deadline = time.monotonic() + 1.0
            while (await b.strategies.get(strategy.id)).version != str(version):
                assert time.monotonic() < deadline, "other process still stale after 1 s"
                await asyncio.sleep(0.01)
    delete_keys(settings.redis_key_prefix)


async def test_a_load_racing_a_write_cannot_store_the_old_value(store: TradeStore) -> None:
    key = f"race:{uuid.uuid4()}"
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_old_loader() -> str:
        started.set()
        await release.wait()
        return "old"  # read before the write committed

    slow = asyncio.create_task(store.cache.get_or_load(key, slow_old_loader))
    await started.wait()
    await store.cache.invalidate(key)  # the write commits meanwhile

    async def new_loader() -> str:
        return "new"

    assert await store.cache.get_or_load(key, new_loader) == "new"
    release.set()
    assert await slow == "old"  # its own caller asked before the write
    assert await store.cache.get_or_load(key, new_loader) == "new"  # not overwritten


async def test_redis_down_reads_fall_back_and_writes_succeed_with_one_warning(
    migrated_db_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(migrated_db_url, redis_url=redis_server.url, redis_timeout_s=0.3)
    async with TradeStore(settings) as store:
        strategy = await new_strategy(store)
        await store.strategies.get(strategy.id)
        redis_server.kill()
        with caplog.at_level(logging.WARNING, logger="tradestore"):
            for version in ("2", "3", "4"):
                updated = await store.strategies.update(strategy.id, version=version)
                assert updated.version == version
                assert (await store.strategies.get(strategy.id)).version == version
            trade = await store.trades.open(
                {
                    "strategy_id": strategy.id,
                    "symbol": "BTC-USD",
                    "side": "BUY",
                    "entry_price": "1",
                    "quantity": "1",
                }
            )
            await store.trades.close(trade.id, exit_price="2", exit_reason="SIGNAL")
        warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(warnings) == 1
        assert (await store.strategies.get(strategy.id)).total_trades == 1


async def test_an_invalidation_redis_missed_is_retried_and_the_writer_never_reads_old(
    migrated_db_url: str, redis_server: RedisServer
) -> None:
    import redis as sync_redis

    settings = make_settings(
        migrated_db_url, redis_url=redis_server.url, redis_timeout_s=0.3, cache_l1_ttl_ms=60_000
    )
    key = f"risk.{uuid.uuid4().hex[:8]}"
    async with TradeStore(settings) as writer, TradeStore(settings) as other:
        await writer.config.set(key, 1)
        assert await writer.config.get(key) == 1 and await other.config.get(key) == 1
        pauser = sync_redis.Redis(port=redis_server.port)
        pauser.execute_command("CLIENT", "PAUSE", "1500", "ALL")  # Redis stalls
        await writer.config.set(key, 2)  # committed; the invalidation cannot get through
        assert await writer.config.get(key) == 2  # never the old L2 copy
        await asyncio.sleep(1.6)  # Redis answers again
        assert await writer.config.get(key) == 2
        for _ in range(60):  # the retry tells the other process, well inside its L1 TTL
            if await other.config.get(key) == 2:
                break
            await asyncio.sleep(0.05)
        assert await other.config.get(key) == 2
        assert writer.cache.retrier.health().state in ("finished", "running")
        pauser.close()
    delete_keys(settings.redis_key_prefix, redis_server.url)
