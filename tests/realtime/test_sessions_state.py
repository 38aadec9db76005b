"""Sessions, strategy state (CAS, snapshot/restore) and latest candles on real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis

from tests.conftest import REDIS_URL, delete_keys
from tests.marketdata.helpers import candles, new_symbol
from tests.trading.helpers import new_strategy
from tradestore import Conflict, TradeStore, ValidationError


async def test_session_lifecycle_stores_only_the_hash(store: TradeStore) -> None:
    user = f"user-{uuid.uuid4().hex[:6]}"
    token, session = await store.sessions.create(user, {"role": "trader"}, ttl_s=60)
    assert len(token) >= 43 and session.id == hashlib.sha256(token.encode()).hexdigest()
    raw = redis.Redis.from_url(REDIS_URL)
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
    await store.strategy_state.set(strategy.id, "temp", 1, ttl_s=0.2)
    assert await store.strategy_state.snapshot(strategy.id) == 2
    delete_keys(store.settings.redis_key_prefix)  # Redis loses everything of ours
    assert await store.strategy_state.get(strategy.id, "cursor:binance") is None
    assert await store.strategy_state.restore(strategy.id) == 2
    back = await store.strategy_state.get(strategy.id, "cursor:binance")
    assert back is not None and back.value == {"last_id": 42} and back.version == 2
    await store.strategy_state.set(strategy.id, "cursor:binance", {"last_id": 43})
    assert await store.strategy_state.restore(strategy.id) == 0  # never over newer values
    assert (await store.strategy_state.get(strategy.id, "cursor:binance")).value == {  # type: ignore[union-attr]
        "last_id": 43
    }
    await store.strategy_state.set(strategy.id, "blink", 1, ttl_s=0.1)
    await asyncio.sleep(0.25)
    assert await store.strategy_state.get(strategy.id, "blink") is None


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
