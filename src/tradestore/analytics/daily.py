"""Daily strategy_metrics rows, from closed trades and portfolio snapshots.

For each UTC date D of a strategy:
- trade statistics (counts, P&L, win rate, profit factor, average and largest win/loss,
  durations) are of the trades CLOSED on D (exit_time's UTC date);
- return-based figures (max drawdown and its duration, Sharpe, Sortino, Calmar, VaR,
  CVaR, correlation, beta, alpha) use the daily equity series (the last snapshot of each
  UTC day) over the WINDOW_DAYS days ending on D: returns need snapshots, and are NULL
  when there are fewer than two; the benchmark is the daily closes of BENCHMARK_SYMBOL
  (1d candles, else resampled from 1m), and correlation/beta/alpha are NULL without it.
- max_drawdown is a magnitude (fraction >= 0); max_drawdown_duration is in minutes
  (days below the peak * 1440); durations in minutes; values are rounded to their
  columns' scales and clamped to their ranges.
Rows are upserted on (strategy_id, date): running twice gives the same rows. Without
`recompute`, only dates that have no row yet are computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID

import numpy as np

from tradestore.analytics import metrics as m
from tradestore.db.database import Database
from tradestore.frames import Records
from tradestore.marketdata.repository import MarketDataRepository
from tradestore.trading.models import as_uuid

WINDOW_DAYS = 90
BENCHMARK_SYMBOL = "BTC-USD"

CLOSED_TRADES = """
SELECT (exit_time AT TIME ZONE 'UTC')::date AS day, pnl,
       extract(epoch FROM exit_time - entry_time) / 60 AS minutes
  FROM trades_with_archive
 WHERE strategy_id = %s AND status = 'CLOSED' AND pnl IS NOT NULL
   AND exit_time >= %s AND exit_time < %s
"""
DAILY_EQUITY = """
SELECT DISTINCT ON (day) (snapshot_time AT TIME ZONE 'UTC')::date AS day,
       total_value::float8 AS value
  FROM portfolio_snapshots
 WHERE strategy_id = %s AND snapshot_time >= %s AND snapshot_time < %s
 ORDER BY day, snapshot_time DESC
"""
EXISTING = "SELECT date FROM strategy_metrics WHERE strategy_id = %s AND date BETWEEN %s AND %s"
COLUMNS = (
    "total_trades",
    "winning_trades",
    "losing_trades",
    "total_pnl",
    "gross_profit",
    "gross_loss",
    "win_rate",
    "profit_factor",
    "max_drawdown",
    "max_drawdown_duration",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "avg_trade_duration",
    "max_trade_duration",
    "avg_win",
    "avg_loss",
    "largest_win",
    "largest_loss",
    "var_95",
    "cvar_95",
    "market_correlation",
    "beta",
    "alpha",
)
FRAME = f"""
SELECT strategy_id, date, {", ".join(COLUMNS)}
  FROM strategy_metrics WHERE strategy_id = %s AND date BETWEEN %s AND %s ORDER BY date
"""  # noqa: S608 - a fixed column list
UPSERT = f"""
INSERT INTO strategy_metrics (strategy_id, date, {", ".join(COLUMNS)})
VALUES (%(strategy_id)s, %(date)s, {", ".join(f"%({c})s" for c in COLUMNS)})
ON CONFLICT (strategy_id, date) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS)}, updated_at = now()
"""  # noqa: S608 - column names are the fixed tuple above
# (scale, limit) of each DECIMAL column: values are rounded and clamped into it.
SCALES: dict[str, tuple[int, str]] = {
    "total_pnl": (8, "9999999999.99999999"),
    "gross_profit": (8, "9999999999.99999999"),
    "gross_loss": (8, "9999999999.99999999"),
    "avg_win": (8, "9999999999.99999999"),
    "avg_loss": (8, "9999999999.99999999"),
    "largest_win": (8, "9999999999.99999999"),
    "largest_loss": (8, "9999999999.99999999"),
    "var_95": (8, "9999999999.99999999"),
    "cvar_95": (8, "9999999999.99999999"),
    "win_rate": (4, "1"),
    "profit_factor": (4, "9999.9999"),
    "max_drawdown": (4, "9999.9999"),
    "sharpe_ratio": (4, "9999.9999"),
    "sortino_ratio": (4, "9999.9999"),
    "calmar_ratio": (4, "9999.9999"),
    "market_correlation": (4, "1"),
    "beta": (4, "9999.9999"),
    "alpha": (4, "9999.9999"),
}


@dataclass
class ComputeResult:
    strategy_id: UUID
    computed: list[date]
    skipped: int


class DailyMetrics:
    def __init__(self, db: Database, market_data: Callable[[], MarketDataRepository]) -> None:
        self.db = db
        self._market_data = market_data

    async def frame(self, strategy_id: UUID, first: date, last: date) -> Records:
        """The strategy_metrics rows of days first..last (inclusive), oldest first, as
        columns (see tradestore.frames)."""
        return await self.db.records(FRAME, (as_uuid(strategy_id), first, last))

    async def compute(
        self,
        strategy_id: UUID,
        start: date,
        end: date,
        *,
        recompute: bool = False,
        periods: int = 365,
        risk_free: float = 0.0,
        on_day: Callable[[date], None] | None = None,
    ) -> ComputeResult:
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        existing = (
            set()
            if recompute
            else {r["date"] for r in await self.db.query(EXISTING, (strategy_id, start, end))}
        )
        todo = [d for d in days if d not in existing]
        if not todo:
            return ComputeResult(strategy_id, [], len(days))
        window_start = _at(todo[0] - timedelta(days=WINDOW_DAYS))
        until = _at(todo[-1] + timedelta(days=1))
        trades = await self.db.query(CLOSED_TRADES, (strategy_id, _at(todo[0]), until))
        equity = {
            r["day"]: r["value"]
            for r in await self.db.query(DAILY_EQUITY, (strategy_id, window_start, until))
        }
        bench = await self._benchmark(window_start, until)
        async with self.db.transaction() as conn:
            for day in todo:
                row = _day_row(day, trades, equity, bench, periods, risk_free)
                await conn.execute(UPSERT, {"strategy_id": strategy_id, "date": day, **row})
                if on_day is not None:
                    on_day(day)
        return ComputeResult(strategy_id, todo, len(days) - len(todo))

    async def _benchmark(self, start: datetime, end: datetime) -> dict[date, float]:
        md = self._market_data()
        frame = await md.get_historical_data(BENCHMARK_SYMBOL, "1d", start, end)
        if len(frame) == 0:
            frame = await md.resample(BENCHMARK_SYMBOL, "1d", start, end)
        return {
            t.astype("datetime64[D]").item(): float(c)
            for t, c in zip(frame.timestamp, frame.close, strict=True)
        }


def _day_row(
    day: date,
    trades: list[Any],
    equity: dict[date, float],
    bench: dict[date, float],
    periods: int,
    risk_free: float,
) -> dict[str, Any]:
    exact = [t["pnl"] for t in trades if t["day"] == day]  # Decimal: money stays exact
    pnl = np.array([float(p) for p in exact], dtype=np.float64)  # for the ratios only
    minutes = [float(t["minutes"]) for t in trades if t["day"] == day]
    avg_minutes, max_minutes = m.trade_durations(minutes)
    row: dict[str, Any] = {
        "total_trades": len(exact),
        "win_rate": m.win_rate(pnl),
        "profit_factor": m.profit_factor(pnl),
        "avg_trade_duration": avg_minutes if exact else None,
        "max_trade_duration": max_minutes if exact else None,
        **_money_stats(exact),
    }

    row.update(_risk(day, equity, bench, periods, risk_free))
    return {k: _fit(k, v) for k, v in row.items()}


def _money_stats(pnl: list[Decimal]) -> dict[str, Any]:
    """Counts and money figures of closed trades, in Decimal (see metrics.win_loss for
    the sign conventions: gross_loss a magnitude, avg/largest loss signed)."""
    wins = [p for p in pnl if p > 0]
    losses = [p for p in pnl if p < 0]
    eight = Decimal("1e-8")
    return {
        "winning_trades": len(wins),
        "losing_trades": len(losses),
        "total_pnl": sum(pnl, Decimal(0)),
        "gross_profit": sum(wins, Decimal(0)),
        "gross_loss": -sum(losses, Decimal(0)),
        "avg_win": (sum(wins, Decimal(0)) / len(wins)).quantize(eight) if wins else Decimal(0),
        "avg_loss": (sum(losses, Decimal(0)) / len(losses)).quantize(eight)
        if losses
        else Decimal(0),
        "largest_win": max(wins, default=Decimal(0)),
        "largest_loss": min(losses, default=Decimal(0)),
    }


def _risk(
    day: date, equity: dict[date, float], bench: dict[date, float], periods: int, risk_free: float
) -> dict[str, Any]:
    window = [d for d in sorted(equity) if day - timedelta(days=WINDOW_DAYS) < d <= day]
    values = np.array([equity[d] for d in window], dtype=np.float64)
    empty = dict.fromkeys(
        (
            "sharpe_ratio",
            "sortino_ratio",
            "calmar_ratio",
            "var_95",
            "cvar_95",
            "market_correlation",
            "beta",
            "alpha",
        )
    )
    if len(values) < 2:
        return {"max_drawdown": 0.0, "max_drawdown_duration": 0, **empty}
    returns = m.returns_from_equity(values)
    dd = m.max_drawdown(values)
    out: dict[str, Any] = {
        "max_drawdown": dd.max_drawdown,
        "max_drawdown_duration": dd.duration_periods * 1440,
        "sharpe_ratio": m.sharpe(returns, risk_free=risk_free, periods=periods),
        "sortino_ratio": m.sortino(returns, risk_free=risk_free, periods=periods),
        "calmar_ratio": m.calmar(returns, periods=periods),
        "var_95": m.value_at_risk(returns),
        "cvar_95": m.conditional_var(returns),
        "market_correlation": None,
        "beta": None,
        "alpha": None,
    }
    paired = [d for d in window if d in bench]
    if len(paired) >= 3 and len(paired) == len(window):
        b = m.returns_from_equity([bench[d] for d in paired])
        rel = m.against_benchmark(returns, b, risk_free=risk_free, periods=periods)
        out.update(market_correlation=rel.correlation, beta=rel.beta, alpha=rel.alpha)
    return out


def _fit(column: str, value: Any) -> Any:
    if value is None or column not in SCALES:
        return value
    scale, limit = SCALES[column]
    bound = Decimal(limit)
    raw = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    number = raw.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_EVEN)
    return max(-bound, min(bound, number))


def _at(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
