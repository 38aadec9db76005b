"""The blocking facade (`tradestore.connect()`): the same repositories, each call
blocking; usable from inside a running event loop, as in a notebook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import make_settings
from tests.marketdata.helpers import candles, new_symbol
from tradestore import CandleFrame, NotFound, Settings, TradeStoreError, connect


def test_blocking_calls_return_what_the_async_api_returns(settings: Settings) -> None:
    with connect(settings) as store:
        symbol = new_symbol()
        result = store.market_data.store_candles(symbol, "1m", candles(30))
        assert result.inserted == 30
        frame = store.market_data.get_latest_candles(symbol, "1m", 5)
        assert isinstance(frame, CandleFrame) and len(frame) == 5
        assert store.db.query_value("SELECT 1") == 1
        series = store.market_data.list_series(symbol)
        assert [s.row_count for s in series] == [30]
        with pytest.raises(NotFound):
            store.strategies.get_by_name("no such strategy " + symbol)
        assert store.health().ok


def test_async_iterators_become_iterators(settings: Settings) -> None:
    with connect(settings) as store:
        since = datetime.now(UTC) - timedelta(days=3650)
        events = store.events.replay(since)
        assert iter(events) is events  # a plain iterator: for-loops work as they are
        assert all(e.type for e in events)


async def test_it_works_inside_a_running_event_loop(settings: Settings) -> None:
    """A notebook cell runs inside the kernel's event loop; connect() must not need it."""
    assert asyncio.get_running_loop() is not None
    with connect(settings) as store:
        assert store.db.query_value("SELECT 41 + 1") == 42


def test_a_failed_connect_raises_and_leaves_no_thread() -> None:
    import threading

    before = threading.active_count()
    settings = make_settings("postgresql://nobody@127.0.0.1:9/none", connect_timeout_s=1)
    with pytest.raises(TradeStoreError, match="cannot connect to PostgreSQL"):
        connect(settings)  # the open's own error, not one of closing the half-open store
    assert threading.active_count() == before, [t.name for t in threading.enumerate()]
