"""Trades, orders, daily metrics, snapshots and equity curves as pandas, polars and
Arrow frames: money exact when asked (Decimal), float64 otherwise; ids, JSON and enums
as text; the columns even when nothing matches."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from tests.trading.helpers import new_strategy
from tradestore import BacktestResults, TradeFilters, TradeStore

D0 = datetime(2024, 3, 1, tzinfo=UTC)


async def test_trades_and_orders_as_frames_exact_or_float(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    for price in ("100.12345678", "99.5"):
        trade = await store.trades.open(
            {
                "strategy_id": strategy.id,
                "symbol": "BTC-USD",
                "side": "BUY",
                "entry_price": price,
                "quantity": "0.001",
            }
        )
    await store.trades.close(trade.id, exit_price="101", exit_reason="SIGNAL")
    records = await store.trades.frame(TradeFilters(strategy_id=strategy.id))
    assert len(records) == 2
    arrow = records.to_arrow()
    assert pa.types.is_decimal(arrow.schema.field("entry_price").type)
    exact = records.to_pandas(exact=True)
    assert list(exact["entry_price"]) == [Decimal("100.12345678"), Decimal("99.50000000")]
    assert exact["id"].map(type).eq(str).all() and exact["status"].tolist() == ["OPEN", "CLOSED"]
    assert str(exact["entry_time"].dt.tz) == "UTC"
    floats = records.to_pandas()
    assert floats["entry_price"].dtype == np.float64 and floats["pnl"].iloc[1] == 0.0015
    polars = records.to_polars(exact=True)
    assert polars.schema["entry_price"] == pl.Decimal(38, 8)
    orders = await store.orders.frame(strategy_id=strategy.id)
    assert len(orders) == 0 and "client_order_id" in orders.to_pandas().columns


async def test_metrics_snapshots_and_equity_curves_as_frames(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    for day in range(3):
        await store.portfolio.record(
            {
                "strategy_id": strategy.id,
                "total_value": str(1000 + day),
                "cash_balance": "500",
                "positions": [{"symbol": "BTC-USD", "quantity": "0.01"}],
                "snapshot_time": D0 + timedelta(days=day, hours=12),
            }
        )
    snapshots = (await store.portfolio.frame(strategy.id, D0, D0 + timedelta(days=3))).to_pandas()
    assert snapshots["total_value"].tolist() == [1000.0, 1001.0, 1002.0]
    assert snapshots["positions"].iloc[0].startswith("[{")  # JSON text
    await store.metrics.compute(strategy.id, date(2024, 3, 1), date(2024, 3, 3))
    metrics = (
        await store.metrics.frame(strategy.id, date(2024, 3, 1), date(2024, 3, 3))
    ).to_polars()
    assert metrics.height == 3 and "sharpe_ratio" in metrics.columns
    bt = await store.backtests.create(
        strategy.id,
        name="frames",
        symbol="BTC-USD",
        timeframe="1h",
        start=D0,
        end=D0 + timedelta(days=1),
        initial_capital="1000",
    )
    await store.backtests.start(bt.id)
    times = np.datetime64("2024-03-01T00:00") + np.arange(24) * np.timedelta64(3600, "s")
    values = 1000 + np.arange(24, dtype=float)
    results = BacktestResults(0.02, 0.1, 0.1, 0.0, 1.0, 1, 1, 1.0, 1.0, 5, 24)
    await store.backtests.complete(bt.id, results, equity_time=times, equity_value=values)
    equity = (await store.backtests.equity_frame(bt.id)).to_pandas()
    assert list(equity.columns) == ["time", "equity"] and len(equity) == 24
    assert equity["time"].iloc[1] == pd.Timestamp("2024-03-01T01:00", tz="UTC")
