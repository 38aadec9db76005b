"""A strategy report: summary figures, and one self-contained HTML page with the equity
curve, drawdown and daily returns drawn as inline SVG (no scripts, no external files)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from tradestore.analytics import metrics as m

if TYPE_CHECKING:
    from tradestore.db.database import Database
    from tradestore.trading.models import Strategy
    from tradestore.trading.strategies import StrategyRepository

DAILY_PNL = """
SELECT (exit_time AT TIME ZONE 'UTC')::date AS day, sum(pnl) AS pnl
  FROM trades_with_archive
 WHERE strategy_id = %s AND status = 'CLOSED' GROUP BY 1 ORDER BY 1
"""


@dataclass
class Report:
    strategy: Strategy
    summary: dict[str, Any]
    days: list[date] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    source: str = ""  # where the equity series comes from


async def build_report(db: Database, strategies: StrategyRepository, strategy: Strategy) -> Report:
    perf = await strategies.performance(strategy.id)
    rows = await db.query(
        "SELECT DISTINCT ON (day) (snapshot_time AT TIME ZONE 'UTC')::date AS day, "
        "total_value::float8 AS v FROM portfolio_snapshots WHERE strategy_id = %s "
        "ORDER BY day, snapshot_time DESC",
        (strategy.id,),
    )
    if len(rows) >= 2:
        days, equity, source = [r["day"] for r in rows], [r["v"] for r in rows], "snapshots"
    else:
        pnl = await db.query(DAILY_PNL, (strategy.id,))
        days = [r["day"] for r in pnl]
        equity = list(np.cumsum([float(r["pnl"]) for r in pnl]))
        source = "cumulative closed P&L (no portfolio snapshots)"
    returns = m.returns_from_equity(equity) if source == "snapshots" else np.empty(0)
    dd = m.max_drawdown(equity) if source == "snapshots" else m.Drawdown(0.0, 0)
    summary = {
        "closed trades": perf.total_trades,
        "winning trades": perf.winning_trades,
        "win rate": f"{perf.winning_trades / perf.total_trades:.1%}" if perf.total_trades else "-",
        "total P&L": perf.total_pnl,
        "best trade": perf.best_trade,
        "worst trade": perf.worst_trade,
        "avg duration (min)": perf.avg_duration_minutes,
        "max drawdown": f"{dd.max_drawdown:.2%}",
        "Sharpe (365)": f"{m.sharpe(returns):.2f}",
        "Sortino (365)": f"{m.sortino(returns):.2f}",
        "VaR 95%": f"{m.value_at_risk(returns):.2%}",
        "CVaR 95%": f"{m.conditional_var(returns):.2%}",
        "equity from": source,
    }
    return Report(strategy, summary, days, equity, source)


def render_html(report: Report) -> str:
    equity = np.asarray(report.equity, dtype=np.float64)
    peaks = np.maximum.accumulate(equity) if len(equity) else equity
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peaks > 0, equity / peaks - 1, 0.0) if len(equity) else equity
    returns = (
        np.diff(equity) / equity[:-1]
        if len(equity) > 1 and (equity[:-1] > 0).all()
        else np.diff(equity)
        if len(equity) > 1
        else equity
    )
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in report.summary.items()
    )
    name = html.escape(report.strategy.name)
    first = report.days[0].isoformat() if report.days else "-"
    last = report.days[-1].isoformat() if report.days else "-"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} — tradestore report</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2rem auto; max-width: 960px; color: #222; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.1rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .25rem .8rem; text-align: left;
border-bottom: 1px solid #ddd; }} th {{ font-weight: 600; }}
svg {{ background: #fafafa; border: 1px solid #e5e5e5; }}
</style></head><body>
<h1>{name} <small>v{html.escape(report.strategy.version)}</small></h1>
<p>{first} to {last}, generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>
<h2>Metrics</h2><table>{rows}</table>
<h2>Equity curve</h2>{_line(equity, "#1f6feb")}
<h2>Drawdown</h2>{_line(drawdown, "#d73a49", fill=True)}
<h2>Daily returns</h2>{_bars(np.asarray(returns, dtype=np.float64))}
</body></html>
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value:,.8f}".rstrip("0").rstrip(".")
    return str(value)


def _scale(values: np.ndarray, height: int) -> tuple[np.ndarray, float, float]:
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo or 1.0
    return height - 10 - (values - lo) / span * (height - 20), lo, hi


def _line(
    values: np.ndarray, color: str, *, fill: bool = False, width: int = 900, height: int = 220
) -> str:
    if len(values) < 2:
        return "<p>not enough data</p>"
    ys, lo, hi = _scale(values, height)
    xs = np.linspace(10, width - 10, len(values))
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    area = (
        (
            f'<polygon points="10,{height - 10} {points} {width - 10},{height - 10}" '
            f'fill="{color}" fill-opacity=".15"/>'
        )
        if fill
        else ""
    )
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img">{area}<polyline points="{points}" fill="none" stroke="{color}" '
        f'stroke-width="1.5"/><text x="12" y="14" font-size="11">{hi:,.4g}</text>'
        f'<text x="12" y="{height - 12}" font-size="11">{lo:,.4g}</text></svg>'
    )


def _bars(values: np.ndarray, width: int = 900, height: int = 180) -> str:
    if len(values) == 0:
        return "<p>not enough data</p>"
    top = float(np.abs(values).max()) or 1.0
    mid = height / 2
    step = (width - 20) / len(values)
    bars = "".join(
        f'<rect x="{10 + i * step:.1f}" y="{min(mid, mid - v / top * (mid - 10)):.1f}" '
        f'width="{max(step - 1, 1):.1f}" height="{abs(v) / top * (mid - 10):.1f}" '
        f'fill="{"#2da44e" if v >= 0 else "#d73a49"}"/>'
        for i, v in enumerate(values)
    )
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img"><line x1="10" x2="{width - 10}" y1="{mid}" y2="{mid}" '
        f'stroke="#999"/>{bars}</svg>'
    )
