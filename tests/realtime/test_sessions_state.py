"""Sessions, strategy state (CAS, snapshot/restore) and latest candles on real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import delete_keys, raw_redis
from tests.marketdata.helpers import candles, new_symbol
from tests.trading.helpers import new_strategy
from tradestore import Conflict, TradeStore, ValidationError


async def test_session_lifecycle_stores_only_the_hash(store: TradeStore) -> None:
    user = f"user-{uuid.uuid4().hex[:6]}"
    token, session = await store.sessions.create(user, {"role": "trader"}, ttl_s=60)
    assert len(token) >= 43 and session.id == hashlib.sha256(token.encode()).hexdigest()
    raw = raw_redis()
    keys = [k.decode() for k in raw.scan_iter(match=f"{store.settings.redis_key_prefix}*")]
    assert not any(token in k for k in keys)
    assert all(token.encode() not in (raw.get(k) or b"") for k in keys if "session:" in k)
    got = await store.sessions.get(token)
    assert got is not None and got.data == {"role": "trader"} and got.user_id == user
    second, _ = await store.sessions.create(user, ttl_s=60)
    assert {s.id for s in await store.sessions.of_user(user)} == {session.id, _hash(second)}
    assert await store.sessions.revoke(token) is True
    assert await store.sessions.get(token) is None and await store.sessions.touch(token) is None
    assert await store.sessions.revoke_all(user) == 1
    assert await store.sessions.of_user(user) == []
    with pytest.raises(ValidationError, match="JSON object"):
        await store.sessions.create(user, ["not", "an", "object"])  # type: ignore[arg-type]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_session_touch_slides_and_expiry_means_not_found(store: TradeStore) -> None:
    token, _ = await store.sessions.create("u-expiry", ttl_s=2)
    await asyncio.sleep(1.2)
    touched = await store.sessions.touch(token)
    assert touched is not None
    await asyncio.sleep(1.2)  # 2.4 s after creation, 1.2 s after the touch
    assert await store.sessions.get(token) is not None
    await asyncio.sleep(2.2)
    assert await store.sessions.get(token) is None


async def test_state_compare_and_set_race(store: TradeStore) -> None:
    sid = uuid.uuid4()
    v1 = await store.strategy_state.set(sid, "position", {"qty": "1.5"}, expected_version=0)
    assert v1 == 1
    with pytest.raises(Conflict, match="version 1, not 0"):
        await store.strategy_state.set(sid, "position", {"qty": "9"}, expected_version=0)

    async def writer(i: int) -> bool:
        try:
            await store.strategy_state.set(sid, "position", {"qty": str(i)}, expected_version=1)
            return True
        except Conflict:
            return False

    outcomes = await asyncio.gather(*(writer(i) for i in range(20)))
    assert sum(outcomes) == 1  # exactly one worker won the race
    state = await store.strategy_state.get(sid, "position")
    assert state is not None and state.version == 2


async def test_state_ttl_and_snapshot_restore_after_a_flush(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    await store.strategy_state.set(strategy.id, "cursor:binance", {"last_id": 41})
    await store.strategy_state.set(strategy.id, "cursor:binance", {"last_id": 42})
    await store.strategy_state.set(strategy.id, "temp", 1, ttl_s=30)
    await store.strategy_state.set(strategy.id, "gone", 1, ttl_s=0.05)
    assert await store.strategy_state.snapshot(strategy.id) == 3
    await asyncio.sleep(0.1)  # "gone" expires, in Redis and in the snapshot's eyes
    delete_keys(store.settings.redis_key_prefix)  # Redis loses everything of ours
    assert await store.strategy_state.get(strategy.id, "cursor:binance") is None
    assert await store.strategy_state.restore(strategy.id) == 2  # not the expired one
    back = await store.strategy_state.get(strategy.id, "cursor:binance")
    assert back is not None and back.value == {"last_id": 42} and back.version == 2
    assert await store.strategy_state.get(strategy.id, "gone") is None
    items = await store.strategy_state.items(strategy.id)
    assert items["cursor:binance"].expires_at is None
    temp_expiry = items["temp"].expires_at
    assert temp_expiry is not None  # the TTL survived the restore
    assert timedelta(seconds=25) < temp_expiry - datetime.now(UTC) <= timedelta(seconds=30)
    await store.strategy_state.set(strategy.id, "cursor:binance", {"last_id": 43})
    assert await store.strategy_state.restore(strategy.id) == 0  # never over newer values
    assert (await store.strategy_state.get(strategy.id, "cursor:binance")).value == {  # type: ignore[union-attr]
        "last_id": 43
    }
    await store.strategy_state.set(strategy.id, "blink", 1, ttl_s=0.1)
    await asyncio.sleep(0.25)
    assert await store.strategy_state.get(strategy.id, "blink") is None


async def test_state_versions_never_go_back_and_deletions_are_not_undone(
    store: TradeStore,
) -> None:
    sid = (await new_strategy(store)).id
    state = store.strategy_state
    assert await state.set(sid, "pos", "a") == 1
    assert await state.set(sid, "pos", "b") == 2
    assert await state.snapshot(sid) == 1  # snapshot holds version 2, "b"
    assert await state.delete(sid, "pos") is True
    assert await state.restore(sid) == 0  # the deletion is newer than the snapshot
    assert await state.get(sid, "pos") is None
    assert await state.set(sid, "pos", "c", expected_version=0) == 4  # not back to 1
    assert await state.restore(sid) == 0
    got = await state.get(sid, "pos")
    assert got is not None and got.value == "c" and got.version == 4
    # a deletion snapshotted survives a flush: the deleted value does not come back
    assert await state.delete(sid, "pos") is True
    await state.snapshot(sid)
    delete_keys(store.settings.redis_key_prefix)
    assert await state.restore(sid) == 0
    assert await state.get(sid, "pos") is None
    assert await state.set(sid, "pos", "d") == 6


async def test_state_items_take_a_strategy_id_not_a_pattern(store: TradeStore) -> None:
    mine, other = (await new_strategy(store)).id, (await new_strategy(store)).id
    await store.strategy_state.set(other, "secret", 1)
    with pytest.raises(ValidationError, match="strategy_id"):
        await store.strategy_state.items("*")  # type: ignore[arg-type]
    assert await store.strategy_state.items(mine) == {}


async def test_latest_candle_set_by_ingest(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = candles(5)
    before = datetime.now(UTC)
    await store.market_data.store_candles(symbol, "1m", rows)
    latest = await store.latest.get_candle(symbol, "1m")
    assert latest is not None and latest["close"] == rows[-1]["close"]
    assert latest["set_at"] >= before
    await store.latest.record_ticker(symbol, {"bid": Decimal("1.5"), "ask": Decimal("1.6")})
    ticker = await store.latest.get_ticker(symbol)
    assert ticker is not None and ticker["ask"] == Decimal("1.6")


async def test_a_backfill_never_replaces_the_live_candle(store: TradeStore) -> None:
    symbol = new_symbol()
    live = candles(3, start=datetime.now(UTC).replace(second=0, microsecond=0))
    await store.market_data.store_candles(symbol, "1m", live)
    await store.market_data.store_candles(
        symbol, "1m", candles(500, start=datetime(2019, 1, 1, tzinfo=UTC))
    )
    latest = await store.latest.get_candle(symbol, "1m")
    assert latest is not None and latest["timestamp"] == live[-1]["timestamp"]

    # two recorders finishing out of order, racing: the newest wins whatever the order
    older, newer = dict(live[-1]), dict(live[-1])
    newer["timestamp"] = live[-1]["timestamp"].replace(year=live[-1]["timestamp"].year + 1)
    results = await asyncio.gather(
        *(store.latest.record_candle(symbol, "5m", c) for c in [newer, older] * 10)
    )
    assert results.count(True) >= 1
    latest = await store.latest.get_candle(symbol, "5m")
    assert latest is not None and latest["timestamp"] == newer["timestamp"]
