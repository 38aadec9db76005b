"""Demo step: snapshots and trades over two weeks, daily metrics, a backtest, a report."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from rich.table import Table

from tradestore.analytics.backtests import BacktestResults
from tradestore.analytics.report import build_report
from tradestore.analytics.report_html import render_html
from tradestore.cli.common import console
from tradestore.demo.trading import demo_strategy
from tradestore.store import TradeStore


async def step_analytics(store: TradeStore) -> None:
    strategy = await demo_strategy(store)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=14)
    rng = np.random.default_rng(11)
    value = Decimal("100000")
    for day in range(14):
        when = start + timedelta(days=day)
        if await store.portfolio.range(strategy.id, when, when + timedelta(days=1)):
            continue  # the demo ran before: keep its history
        value += Decimal(str(round(float(rng.normal(150, 900)), 2)))
        await store.portfolio.record(
            {
                "strategy_id": strategy.id,
                "total_value": value,
                "cash_balance": value / 2,
                "positions": [{"symbol": "BTC-USD", "quantity": "0.75", "side": "LONG"}],
                "snapshot_time": when + timedelta(hours=23, minutes=59),
            }
        )
    result = await store.metrics.compute(strategy.id, start.date(), today.date())
    console.print(
        f"daily metrics: {len(result.computed)} day(s) computed, {result.skipped} already there"
    )
    bt = await store.backtests.create(
        strategy.id,
        name="demo sma 10/30",
        symbol="BTC-USD",
        timeframe="1h",
        start=start,
        end=today,
        initial_capital="10000",
        commission="0.001",
    )
    await store.backtests.start(bt.id)
    curve = 10_000 * np.cumprod(1 + rng.normal(0.0002, 0.004, 14 * 24))
    times = np.datetime64(start.replace(tzinfo=None), "us") + np.arange(
        len(curve)
    ) * np.timedelta64(3600, "s")
    await store.backtests.complete(
        bt.id,
        BacktestResults(
            total_return=float(curve[-1] / 10_000 - 1),
            annualized_return=0.42,
            volatility=0.31,
            max_drawdown=0.07,
            sharpe_ratio=1.37,
            total_trades=41,
            winning_trades=23,
            win_rate=23 / 41,
            profit_factor=1.46,
            execution_time_ms=812,
            data_points_processed=len(curve),
        ),
        equity_time=times,
        equity_value=curve,
    )
    best = await store.backtests.best("BTC-USD", "1h", 3)
    console.print(
        f"backtest stored ({len(curve)} equity points); best for BTC-USD 1h: "
        + ", ".join(f"{b.name} (Sharpe {b.sharpe_ratio})" for b in best)
    )
    report = await build_report(store.db, store.strategies, strategy, store.market_data)
    table = Table("metric", "value", title=f"report: {strategy.name}")
    for k, v in list(report.summary.items())[:10]:
        table.add_row(k, str(v))
    console.print(table)
    path = Path(store.settings.data_dir) / "demo-report.html"
    await asyncio.to_thread(_write, path, render_html(report))
    console.print(f"HTML report: {path}")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
