"""A strategy report: what it earned, how, against what, with which trades.

`build_report` gathers the data: the daily equity (portfolio snapshots, else cumulative
closed P&L), a benchmark (buy and hold of the strategy's first symbol, from its daily
candles, scaled to the same starting equity), the closed trades, and the summary
figures. `tradestore.analytics.report_html.render_html` draws it as one self-contained
page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from tradestore.analytics import metrics as m
from tradestore.errors import NotFound, ValidationError

if TYPE_CHECKING:
    from tradestore.db.database import Database
    from tradestore.db.replicas import ReadRouter
    from tradestore.marketdata.repository import MarketDataRepository
    from tradestore.trading.models import Strategy
    from tradestore.trading.strategies import StrategyRepository

DAILY_PNL = """
SELECT (exit_time AT TIME ZONE 'UTC')::date AS day, sum(pnl) AS pnl
  FROM trades_with_archive
 WHERE strategy_id = %s AND status = 'CLOSED' GROUP BY 1 ORDER BY 1
"""
DAILY_EQUITY = """
SELECT DISTINCT ON (day) (snapshot_time AT TIME ZONE 'UTC')::date AS day,
       total_value::float8 AS v
  FROM portfolio_snapshots WHERE strategy_id = %s
 ORDER BY day, snapshot_time DESC
"""
CLOSED_TRADES = """
SELECT symbol, side, entry_time, exit_time, entry_price, exit_price,
       filled_quantity AS quantity, pnl, pnl_percent, exit_reason
  FROM trades_with_archive
 WHERE strategy_id = %s AND status = 'CLOSED'
 ORDER BY exit_time DESC
 LIMIT %s
"""
TRADES_SHOWN = 500

# what each figure of the summary means (printed under the table of the HTML report)
DEFINITIONS = {
    "Sharpe (365)": "mean daily return / standard deviation of daily returns, times "
    "sqrt(365) (crypto trades every day); risk-free rate 0",
    "Sortino (365)": "as Sharpe, dividing by the deviation of the negative daily returns only",
    "max drawdown": "largest fall of equity from its running peak, as a share of the peak",
    "VaR 95%": "the daily loss exceeded on 5% of days (historical)",
    "CVaR 95%": "the mean daily loss on those worst 5% of days",
    "win rate": "closed trades with positive P&L / closed trades",
    "avg duration": "mean time from entry to exit of closed trades",
    "benchmark": "buy and hold of the strategy's first symbol from the first equity day, "
    "scaled to the same starting equity",
}


@dataclass(frozen=True)
class ClosedTrade:
    symbol: str
    side: str
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal
    exit_price: Decimal
    quantity: Decimal
    pnl: Decimal | None
    pnl_percent: Decimal | None
    exit_reason: str | None

    @property
    def duration(self) -> timedelta:
        return self.exit_time - self.entry_time


@dataclass
class Report:
    strategy: Strategy
    summary: dict[str, Any]
    days: list[date] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    source: str = ""  # where the equity series comes from
    benchmark: list[float] | None = None  # aligned with days
    benchmark_note: str = ""
    trades: list[ClosedTrade] = field(default_factory=list)


async def build_report(
    db: Database | ReadRouter,
    strategies: StrategyRepository,
    strategy: Strategy,
    market_data: MarketDataRepository | None = None,
) -> Report:
    perf = await strategies.performance(strategy.id)
    days, equity, source = await _equity(db, strategy)
    returns = m.returns_from_equity(equity) if source == "snapshots" else np.empty(0)
    dd = m.max_drawdown(equity) if source == "snapshots" else m.Drawdown(0.0, 0)
    summary = {
        "closed trades": perf.total_trades,
        "winning trades": perf.winning_trades,
        "win rate": f"{perf.winning_trades / perf.total_trades:.1%}" if perf.total_trades else "-",
        "total P&L": perf.total_pnl,
        "best trade": perf.best_trade,
        "worst trade": perf.worst_trade,
        "avg duration": duration_text(perf.avg_duration_minutes),
        "max drawdown": f"{dd.max_drawdown:.2%}",
        "Sharpe (365)": f"{m.sharpe(returns):.2f}",
        "Sortino (365)": f"{m.sortino(returns):.2f}",
        "VaR 95%": f"{m.value_at_risk(returns):.2%}",
        "CVaR 95%": f"{m.conditional_var(returns):.2%}",
        "equity from": source,
    }
    report = Report(strategy, summary, days, equity, source)
    report.trades = [
        ClosedTrade(**r) for r in await db.query(CLOSED_TRADES, (strategy.id, TRADES_SHOWN))
    ]
    if market_data is not None:
        await _benchmark(report, market_data)
    return report


async def _equity(
    db: Database | ReadRouter, strategy: Strategy
) -> tuple[list[date], list[float], str]:
    rows = await db.query(DAILY_EQUITY, (strategy.id,))
    if len(rows) >= 2:
        return [r["day"] for r in rows], [r["v"] for r in rows], "snapshots"
    pnl = await db.query(DAILY_PNL, (strategy.id,))
    cumulative = list(np.cumsum([float(r["pnl"]) for r in pnl]))
    return [r["day"] for r in pnl], cumulative, "cumulative closed P&L (no portfolio snapshots)"


async def _benchmark(report: Report, market_data: MarketDataRepository) -> None:
    """Buy and hold of the first symbol over the report's days, on its daily closes."""
    if report.source != "snapshots" or not report.strategy.symbols or len(report.days) < 2:
        report.benchmark_note = "no benchmark (needs portfolio snapshots on two days or more)"
        return
    symbol = report.strategy.symbols[0]
    start = datetime.combine(report.days[0], datetime.min.time(), UTC)
    end = datetime.combine(report.days[-1], datetime.min.time(), UTC) + timedelta(days=1)
    try:
        frame = await market_data.get_historical_data(symbol, "1d", start, end)
    except (NotFound, ValidationError):
        frame = None
    if frame is None or len(frame) == 0:
        report.benchmark_note = f"no benchmark: no {symbol} candles stored for these days"
        return
    days = frame.timestamp.astype("datetime64[D]").tolist()
    closes = dict(zip(days, frame.close.tolist(), strict=True))
    aligned, last = [], None
    for day in report.days:
        last = closes.get(day, last)
        aligned.append(last)
    first = next((c for c in aligned if c), None)
    if first is None:
        report.benchmark_note = f"no benchmark: no {symbol} close on the report's days"
        return
    scale = report.equity[0] / first
    report.benchmark = [float("nan") if c is None else c * scale for c in aligned]
    report.benchmark_note = f"buy and hold {symbol}"


def duration_text(minutes: Any) -> str:
    """A duration as people read it: `1d 5h`, `3h 20m`, `45m`; `-` for none."""
    if minutes is None:
        return "-"
    total = round(float(minutes))
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"
