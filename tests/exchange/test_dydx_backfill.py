"""Backfill and follow from a local indexer-shaped server: faults, resume, exactness."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.exchange.replay import Indexer, recorded_candles, running, stored_as, this_minute
from tests.marketdata.helpers import new_symbol
from tradestore import TradeStore
from tradestore.errors import ExchangeError
from tradestore.exchange.retry import RetryPolicy
from tradestore.exchange.service import ExchangeData

T0 = datetime(2025, 12, 1, tzinfo=UTC)
FAST_RETRY = RetryPolicy(base_s=0.01, cap_s=0.05)


@pytest.fixture
def indexer() -> Iterator[Indexer]:
    with running(Indexer()) as server:
        yield server


def exchange(store: TradeStore, indexer: Indexer) -> ExchangeData:
    settings = store.settings.model_copy(
        update={"dydx_indexer_url": indexer.url, "dydx_requests_per_s": 1000.0}
    )
    return ExchangeData(store.market_data, store.db, store.rate_limiter, settings, retry=FAST_RETRY)


async def stored_rows(store: TradeStore, symbol: str) -> list[tuple[Any, ...]]:
    rows = await store.db.query(
        "SELECT timestamp, open, high, low, close, volume, trades_count, vwap, data_source "
        "FROM market_data_all WHERE symbol = %s AND timeframe = '1m' ORDER BY timestamp",
        (symbol,),
    )
    assert {r["data_source"] for r in rows} <= {"dydx"}
    return [tuple(r[k] for k in list(r)[:8]) for r in rows]


async def test_every_candle_stored_once_and_exact_through_faults(
    store: TradeStore, indexer: Indexer
) -> None:
    symbol = new_symbol()
    candles = recorded_candles(symbol, T0, 2500, empty_at=1200)
    indexer.add(candles)
    indexer.faults.extend(["429", "500", "truncated", "overlap"])
    ex = exchange(store, indexer)
    result = await ex.backfill("dydx", symbol, "1m", T0, T0 + timedelta(minutes=2500))
    assert result.fetched >= 2500 and result.inserted == 2500 and result.rejected == []
    assert result.gaps_left == 0
    assert await stored_rows(store, symbol) == [stored_as(c) for c in candles]
    again = await ex.backfill("dydx", symbol, "1m", T0, T0 + timedelta(minutes=2500))
    assert again.windows == 0 and again.fetched == 0  # nothing missing: nothing fetched


async def test_a_killed_backfill_resumes_with_what_is_missing(
    store: TradeStore, indexer: Indexer
) -> None:
    symbol = new_symbol()
    candles = recorded_candles(symbol, T0, 20_000)  # 20 pages
    indexer.add(candles)
    ex = exchange(store, indexer)

    def kill(_: object) -> None:
        raise KeyboardInterrupt  # as Ctrl-C or a crash, after the first store

    until = T0 + timedelta(minutes=20_000)
    with pytest.raises(KeyboardInterrupt):
        await ex.backfill("dydx", symbol, "1m", T0, until, on_progress=kill)
    stored = await stored_rows(store, symbol)
    assert 0 < len(stored) < 20_000 and len(stored) % 1000 == 0  # whole pages only
    assert stored == [stored_as(c) for c in candles[-len(stored) :]]  # the newest stretch
    before = indexer.requests
    result = await ex.backfill("dydx", symbol, "1m", T0, until)
    assert result.inserted == 20_000 - len(stored) and result.unchanged == 0  # only the rest
    assert indexer.requests - before == (20_000 - len(stored)) // 1000  # a page each, no more
    assert await stored_rows(store, symbol) == [stored_as(c) for c in candles]


async def test_a_gap_inside_the_stored_range_is_fetched(
    store: TradeStore, indexer: Indexer
) -> None:
    symbol = new_symbol()
    candles = recorded_candles(symbol, T0, 300)
    indexer.add(candles)
    ex = exchange(store, indexer)
    await ex.backfill("dydx", symbol, "1m", T0, T0 + timedelta(minutes=300))
    await store.market_data.delete(
        symbol, "1m", T0 + timedelta(minutes=100), T0 + timedelta(minutes=110)
    )
    result = await ex.backfill("dydx", symbol, "1m", T0, T0 + timedelta(minutes=300))
    assert result.windows == 1 and result.inserted == 10
    assert await stored_rows(store, symbol) == [stored_as(c) for c in candles]


async def test_the_open_candle_is_never_stored(store: TradeStore, indexer: Indexer) -> None:
    symbol = new_symbol()
    now = this_minute(room_s=5)
    indexer.add(recorded_candles(symbol, now - timedelta(minutes=10), 11))  # the last is open
    result = await exchange(store, indexer).backfill("dydx", symbol, "1m", now - timedelta(hours=1))
    assert result.inserted == 10
    latest = await store.market_data.get_latest_candles(symbol, "1m", 1)
    assert latest.timestamp[0] == (now - timedelta(minutes=1)).replace(tzinfo=None)


async def test_bad_ticker_and_bad_resolution_are_one_clear_line(
    store: TradeStore, indexer: Indexer
) -> None:
    indexer.add(recorded_candles("BTC-USD", T0, 10))
    ex = exchange(store, indexer)
    with pytest.raises(ExchangeError, match=r"ticker must be a valid ticker.*NOPE-USD"):
        await ex.backfill("dydx", "NOPE-USD", "1m", T0)
    with pytest.raises(Exception, match="unknown source 'binance'"):
        await ex.backfill("binance", "BTC-USD", "1m", T0)


async def test_an_indexer_that_keeps_failing_gives_up_with_the_reason(
    store: TradeStore, indexer: Indexer
) -> None:
    indexer.add(recorded_candles("BTC-USD", T0, 10))
    indexer.faults.extend(["500"] * 20)
    with pytest.raises(ExchangeError, match="gave up after 8 attempts \\(HTTP 500\\)"):
        await exchange(store, indexer).backfill(
            "dydx", "BTC-USD", "1m", T0, T0 + timedelta(minutes=10)
        )


async def test_follow_yields_each_new_closed_candle_and_appends_an_event(
    store: TradeStore, indexer: Indexer
) -> None:
    symbol = new_symbol()
    now = this_minute(room_s=5)
    history = recorded_candles(symbol, now - timedelta(minutes=30), 31)  # last one open
    indexer.add(history[:25])
    await store.market_data.store_candles(
        symbol,
        "1m",
        [
            dict(
                zip(
                    ("timestamp", "open", "high", "low", "close", "volume"),
                    stored_as(c)[:6],
                    strict=True,
                )
            )
            for c in history[:20]
        ],
    )
    ex = exchange(store, indexer)
    seen: list[dict[str, Any]] = []

    async def follow() -> None:
        async for candle in ex.follow("dydx", [symbol], "1m", poll_s=0.05):
            seen.append(candle)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.5)
    assert [c["timestamp"] for c in seen] == [stored_as(c)[0] for c in history[20:25]]
    indexer.add(history[25:])  # later candles appear at the indexer
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [c["timestamp"] for c in seen] == [stored_as(c)[0] for c in history[20:30]]
    events = await store.db.query_value(
        "SELECT count(*) FROM event_outbox "
        "WHERE event_type = 'candle.closed' AND aggregate_id = %s",
        (f"dydx|{symbol}|1m",),
    )
    assert events == 10


async def test_an_unreachable_indexer_is_said_within_seconds(store: TradeStore) -> None:
    unreachable = Indexer(url="http://127.0.0.1:9")  # the discard port: nothing listens
    # after CONNECT_ATTEMPTS tries, not the 8 of the ladder for an indexer that answers
    with pytest.raises(ExchangeError, match=re.escape("cannot reach http://127.0.0.1:9")):
        await exchange(store, unreachable).backfill("dydx", "BTC-USD", "1m", T0)
