"""The documented SQL views that dashboards read: v_trades, v_equity, v_data_freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.marketdata.helpers import candles, new_symbol
from tests.trading.helpers import new_strategy, new_trade
from tradestore import TradeStore


async def test_v_trades_and_v_equity(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    trade = await new_trade(store, strategy.id, quantity="2")
    await store.trades.close(trade.id, exit_price="101.5", exit_reason="SIGNAL")
    row = await store.db.query_one("SELECT * FROM v_trades WHERE id = %s", (trade.id,))
    assert row is not None and row["strategy"] == strategy.name
    assert row["pnl"] == Decimal("3") and row["quantity"] == Decimal("2")
    assert row["duration"] == row["exit_time"] - row["entry_time"]
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    await store.portfolio.record(
        {
            "strategy_id": strategy.id,
            "total_value": "1000",
            "cash_balance": "400",
            "snapshot_time": at,
        }
    )
    equity = await store.db.query(
        "SELECT time, equity, cash_balance FROM v_equity WHERE strategy = %s", (strategy.name,)
    )
    assert [(e["time"], e["equity"], e["cash_balance"]) for e in equity] == [
        (at, Decimal("1000"), Decimal("400"))
    ]


async def test_v_data_freshness_says_when_the_latest_candle_closed(store: TradeStore) -> None:
    symbol = new_symbol()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    await store.market_data.store_candles(symbol, "1h", candles(2, start=start, step_s=3600))
    row = await store.db.query_one(
        "SELECT last_ts, closed_at, age, row_count FROM v_data_freshness WHERE symbol = %s",
        (symbol,),
    )
    assert row is not None and row["row_count"] == 2
    assert row["closed_at"] == start + timedelta(hours=2)
    since_closed = datetime.now(UTC) - row["closed_at"]
    assert abs(row["age"] - since_closed) < timedelta(seconds=30)
    assert timedelta(hours=1) <= row["age"] < timedelta(hours=2)
