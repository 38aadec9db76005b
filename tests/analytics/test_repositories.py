"""Snapshots, daily metrics (idempotent, incremental), backtests (lifecycle, 1M points)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from tests.trading.helpers import new_strategy
from tradestore import Conflict, TradeStore, ValidationError

D0 = datetime(2024, 3, 1, tzinfo=UTC)


async def test_snapshots_validate_positions_and_compute_daily_pnl(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    with pytest.raises(ValidationError, match="positions"):
        await store.portfolio.record(
            {
                "strategy_id": strategy.id,
                "total_value": "1",
                "cash_balance": "1",
                "positions": {"BTC": 1},
            }
        )
    with pytest.raises(ValidationError, match=r"positions\.0\.symbol"):
        await store.portfolio.record(
            {
                "strategy_id": strategy.id,
                "total_value": "1",
                "cash_balance": "1",
                "positions": [{"quantity": "1"}],
            }
        )
    for day, value in enumerate(["1000", "1100", "990"]):
        for hour, bump in ((1, "0"), (23, "0.5")):
            await store.portfolio.record(
                {
                    "strategy_id": strategy.id,
                    "total_value": str(Decimal(value) + Decimal(bump)),
                    "cash_balance": "500",
                    "positions": [{"symbol": "BTC-USD", "quantity": "0.01", "side": "LONG"}],
                    "snapshot_time": D0 + timedelta(days=day, hours=hour),
                }
            )
    latest = await store.portfolio.latest(strategy.id)
    assert latest is not None and latest.total_value == Decimal("990.5")
    assert latest.daily_pnl == Decimal("-110")  # vs 1100.5, the previous day's last
    assert latest.daily_pnl_percent == Decimal("-9.9955")
    curve = await store.portfolio.equity_curve(strategy.id, D0, D0 + timedelta(days=3))
    assert len(curve.timestamp) == 6 and curve.total_value[1] == 1000.5


async def _seed_history(store: TradeStore) -> object:
    strategy = await new_strategy(store)
    for day in range(10):
        when = D0 + timedelta(days=day)
        await store.portfolio.record(
            {
                "strategy_id": strategy.id,
                "cash_balance": "0",
                "total_value": str(1000 + 10 * day - 30 * (day == 5)),
                "snapshot_time": when + timedelta(hours=23),
            }
        )
        for k, exit_price in enumerate(["110", "95"]):
            trade = await store.trades.open(
                {
                    "strategy_id": strategy.id,
                    "symbol": "BTC-USD",
                    "side": "BUY",
                    "entry_price": "100",
                    "quantity": "1",
                    "entry_time": when + timedelta(hours=k),
                }
            )
            await store.trades.close(
                trade.id,
                exit_price=exit_price,
                exit_reason="SIGNAL",
                exit_time=when + timedelta(hours=k, minutes=30),
            )
    return strategy


async def test_daily_metrics_idempotent_and_incremental(store: TradeStore) -> None:
    strategy = await _seed_history(store)
    sid = strategy.id  # type: ignore[attr-defined]
    first = await store.metrics.compute(sid, date(2024, 3, 1), date(2024, 3, 10))
    assert len(first.computed) == 10
    rows = await store.db.query(
        "SELECT * FROM strategy_metrics WHERE strategy_id = %s ORDER BY date", (sid,)
    )
    day5 = rows[5]
    assert day5["total_trades"] == 2 and day5["winning_trades"] == 1
    assert day5["total_pnl"] == Decimal("5") and day5["gross_loss"] == Decimal("5")
    assert day5["win_rate"] == Decimal("0.5") and day5["profit_factor"] == Decimal("2")
    assert day5["avg_trade_duration"] == 30 and day5["largest_loss"] == Decimal("-5")
    assert day5["max_drawdown"] > 0 and day5["max_drawdown_duration"] == 1440
    assert rows[0]["sharpe_ratio"] is None  # one equity point: no returns yet
    assert all(r["max_drawdown"] >= 0 for r in rows)
    again = await store.metrics.compute(sid, date(2024, 3, 1), date(2024, 3, 11))
    assert again.computed == [date(2024, 3, 11)] and again.skipped == 10  # incremental
    before = [dict(r) for r in rows]
    redo = await store.metrics.compute(sid, date(2024, 3, 1), date(2024, 3, 10), recompute=True)
    assert len(redo.computed) == 10
    after = await store.db.query(
        "SELECT * FROM strategy_metrics WHERE strategy_id = %s AND date <= '2024-03-10' "
        "ORDER BY date",
        (sid,),
    )
    skip = {"updated_at"}
    assert [{k: v for k, v in r.items() if k not in skip} for r in after] == [
        {k: v for k, v in r.items() if k not in skip} for r in before
    ]


async def test_backtest_lifecycle_and_best(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    symbol = f"BT{time.time_ns() % 10**8}-USD"
    bt = await store.backtests.create(
        strategy.id,
        name="sma 10/30",
        symbol=symbol,
        timeframe="1h",
        start=D0,
        end=D0 + timedelta(days=30),
        initial_capital="10000",
    )
    with pytest.raises(Conflict, match="illegal transition PENDING -> COMPLETED"):
        await store.backtests.complete(
            bt.id, _results(1.0), equity_time=np.array([]), equity_value=np.array([])
        )
    await store.backtests.start(bt.id)
    failed = await store.backtests.fail(bt.id, "data gap at 2024-03-05")
    assert failed.status == "FAILED" and failed.error_message == "data gap at 2024-03-05"
    with pytest.raises(Conflict, match="FAILED -> RUNNING"):
        await store.backtests.start(bt.id)
    for sharpe in (0.5, 2.5, 1.5):
        other = await store.backtests.create(
            strategy.id,
            name=f"s{sharpe}",
            symbol=symbol,
            timeframe="1h",
            start=D0,
            end=D0 + timedelta(days=1),
            initial_capital="1",
        )
        await store.backtests.start(other.id)
        await store.backtests.complete(
            other.id,
            _results(sharpe),
            equity_time=np.array([D0.replace(tzinfo=None)], dtype="datetime64[us]"),
            equity_value=np.array([1.0]),
        )
    best = await store.backtests.best(symbol, "1h", 2)
    assert [float(b.sharpe_ratio) for b in best] == [2.5, 1.5]
    listed = await store.backtests.find(strategy_id=strategy.id)
    assert len(listed) == 4 and listed[0].trade_list is None  # the large fields are not read


def _results(sharpe: float) -> object:
    from tradestore.analytics.backtests import BacktestResults

    return BacktestResults(
        total_return=0.1,
        annualized_return=0.5,
        volatility=0.2,
        max_drawdown=0.05,
        sharpe_ratio=sharpe,
        total_trades=10,
        winning_trades=6,
        win_rate=0.6,
        profit_factor=1.8,
        execution_time_ms=1234,
        data_points_processed=720,
    )


async def test_million_point_equity_curve_round_trip(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    bt = await store.backtests.create(
        strategy.id,
        name="big",
        symbol="BTC-USD",
        timeframe="1m",
        start=D0,
        end=D0 + timedelta(days=700),
        initial_capital="10000",
    )
    await store.backtests.start(bt.id)
    n = 1_000_000
    times = np.datetime64("2024-03-01T00:00") + np.arange(n) * np.timedelta64(60, "s")
    values = 10_000 * np.cumprod(1 + np.random.default_rng(3).normal(0, 1e-4, n))
    done = await store.backtests.complete(
        bt.id,
        _results(1.2),  # type: ignore[arg-type]
        equity_time=times,
        equity_value=values,
    )
    assert done.status == "COMPLETED" and done.data_points_processed == 720
    back_times, back_values = await store.backtests.equity_curve(bt.id)
    assert np.array_equal(back_times, times.astype("datetime64[us]"))
    assert np.array_equal(back_values, values)
    full = await store.backtests.get(bt.id)
    assert not hasattr(full, "equity_curve")  # the preview is not loaded with the summary either


async def test_pooled_connections_work_in_utc_on_a_new_york_database(store: TradeStore) -> None:
    import psycopg

    url = store.settings.postgres_conninfo()
    assert url is not None
    with psycopg.connect(url) as direct:  # what a plain session gets
        assert direct.execute("SHOW TimeZone").fetchone() == ("America/New_York",)
    assert await store.db.query_value("SHOW TimeZone") == "UTC"
    strategy = await new_strategy(store)
    late = datetime(2024, 3, 1, 23, 30, tzinfo=UTC)  # 18:30 in New York, the same day there
    await store.portfolio.record(
        {
            "strategy_id": strategy.id,
            "total_value": "100",
            "cash_balance": "100",
            "snapshot_time": late,
        }
    )
    nxt = await store.portfolio.record(
        {
            "strategy_id": strategy.id,
            "total_value": "110",
            "cash_balance": "110",
            "snapshot_time": late + timedelta(hours=1),
        }
    )
    assert nxt.daily_pnl == Decimal("10")  # 00:30 UTC is a new UTC day
    curve = await store.portfolio.equity_curve(strategy.id, late, late + timedelta(hours=2))
    assert [str(t) for t in curve.timestamp] == [
        "2024-03-01T23:30:00.000000",
        "2024-03-02T00:30:00.000000",
    ]
