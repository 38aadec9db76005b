"""Backfill through CCXT (source ccxt:binance) from a local Binance-shaped server: CCXT's
own load_markets and fetch_ohlcv, faults, resume, exactness."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.exchange.binance_replay import Binance, recorded_klines, stored_as
from tests.exchange.replay import running
from tradestore import TradeStore
from tradestore.errors import ExchangeError, ValidationError
from tradestore.exchange.retry import RetryPolicy
from tradestore.exchange.service import ExchangeData

pytest.importorskip("ccxt")

T0 = datetime(2025, 10, 6, tzinfo=UTC)
FAST_RETRY = RetryPolicy(base_s=0.01, cap_s=0.05)


@pytest.fixture
def binance() -> Iterator[Binance]:
    with running(Binance()) as server:
        yield server
    assert server.unknown_paths == []  # CCXT asked nothing this stand-in does not serve


def exchange(store: TradeStore, binance: Binance) -> ExchangeData:
    settings = store.settings.model_copy(
        update={
            "ccxt_urls": {"binance": binance.url},
            "ccxt_config": {"binance": {"enableRateLimit": False}},
            "ccxt_requests_per_s": 1000.0,
        }
    )
    return ExchangeData(store.market_data, store.db, store.rate_limiter, settings, retry=FAST_RETRY)


def new_pair() -> tuple[str, str]:
    """A fresh market: CCXT's unified symbol, and Binance's id of it."""
    base = "T" + uuid.uuid4().hex[:7].upper()
    return f"{base}/USDT", f"{base}USDT"


async def stored_rows(store: TradeStore, symbol: str) -> list[tuple[Any, ...]]:
    rows = await store.db.query(
        "SELECT timestamp, open, high, low, close, volume, trades_count, vwap, venue, data_source "
        "FROM market_data_all WHERE symbol = %s AND timeframe = '1m' ORDER BY timestamp",
        (symbol,),
    )
    assert {(r["venue"], r["data_source"]) for r in rows} <= {("binance", "ccxt")}
    return [tuple(r[k] for k in list(r)[:8]) for r in rows]


async def test_every_candle_stored_once_and_exact_through_faults(
    store: TradeStore, binance: Binance
) -> None:
    symbol, market = new_pair()
    klines = recorded_klines(T0, 2500)
    binance.add(market, "1m", klines)
    binance.faults.extend(["429", "500", "truncated", "overlap"])
    ex = exchange(store, binance)
    result = await ex.backfill("ccxt:binance", symbol, "1m", T0, T0 + timedelta(minutes=2500))
    assert result.inserted == 2500 and result.rejected == [] and result.gaps_left == 0
    assert await stored_rows(store, symbol) == [stored_as(k) for k in klines]
    before = binance.kline_requests
    again = await ex.backfill("ccxt:binance", symbol, "1m", T0, T0 + timedelta(minutes=2500))
    assert again.windows == 0 and again.fetched == 0 and binance.kline_requests == before


async def test_a_killed_backfill_resumes_with_what_is_missing(
    store: TradeStore, binance: Binance
) -> None:
    symbol, market = new_pair()
    klines = recorded_klines(T0, 20_000)  # 20 pages
    binance.add(market, "1m", klines)
    ex = exchange(store, binance)

    def kill(_: object) -> None:
        raise KeyboardInterrupt  # as Ctrl-C or a crash, after the first store

    until = T0 + timedelta(minutes=20_000)
    with pytest.raises(KeyboardInterrupt):
        await ex.backfill("ccxt:binance", symbol, "1m", T0, until, on_progress=kill)
    stored = await stored_rows(store, symbol)
    assert 0 < len(stored) < 20_000 and len(stored) % 1000 == 0  # whole pages only
    assert stored == [stored_as(k) for k in klines[-len(stored) :]]  # the newest stretch
    before = binance.kline_requests
    result = await ex.backfill("ccxt:binance", symbol, "1m", T0, until)
    assert result.inserted == 20_000 - len(stored) and result.unchanged == 0  # only the rest
    assert binance.kline_requests - before == (20_000 - len(stored)) // 1000
    assert await stored_rows(store, symbol) == [stored_as(k) for k in klines]


async def test_bad_symbol_timeframe_and_exchange_are_one_clear_line(
    store: TradeStore, binance: Binance
) -> None:
    ex = exchange(store, binance)
    with pytest.raises(ExchangeError, match=r"binance: no market 'NOPE/USDT'"):
        await ex.backfill("ccxt:binance", "NOPE/USDT", "1m", T0)
    with pytest.raises(ExchangeError, match=r"Invalid interval"):  # Binance's own answer
        await ex.backfill("ccxt:binance", "BTC/USDT", "4h", T0)
    with pytest.raises(ValidationError, match="ccxt has no exchange 'nope'"):
        await ex.backfill("ccxt:nope", "BTC/USDT", "1m", T0)
    with pytest.raises(ValidationError, match="unknown source 'binance'"):
        await ex.backfill("binance", "BTC/USDT", "1m", T0)


async def test_an_exchange_that_keeps_failing_gives_up_with_the_reason(
    store: TradeStore, binance: Binance
) -> None:
    symbol, market = new_pair()
    binance.add(market, "1m", recorded_klines(T0, 10))
    binance.faults.extend(["500"] * 20)
    with pytest.raises(ExchangeError, match="binance: gave up after 8 attempts"):
        await exchange(store, binance).backfill(
            "ccxt:binance", symbol, "1m", T0, T0 + timedelta(minutes=10)
        )


async def test_an_unreachable_exchange_is_said_within_seconds(
    store: TradeStore, binance: Binance
) -> None:
    settings = store.settings.model_copy(
        update={"ccxt_urls": {"binance": "http://127.0.0.1:9"}, "ccxt_requests_per_s": 1000.0}
    )
    ex = ExchangeData(store.market_data, store.db, store.rate_limiter, settings, retry=FAST_RETRY)
    with pytest.raises(ExchangeError, match="binance: cannot reach the exchange"):
        await ex.backfill("ccxt:binance", "BTC/USDT", "1m", T0)
