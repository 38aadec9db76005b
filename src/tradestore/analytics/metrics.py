"""Performance metrics: pure numpy functions, no I/O.

Conventions (all functions):
- `returns` are simple per-period returns r_t = E_t / E_{t-1} - 1 of an equity series,
  one per period (a day for strategy_metrics); `periods` is the annualisation factor,
  365 by default (crypto trades every day), configurable (252 for equities).
- `risk_free` is an annual rate; per period it is risk_free / periods.
- Trade statistics take realised P&L per closed trade (currency units).
- Every function returns a finite float for any input, including no data, one point,
  all winners and zero volatility: ratios whose denominator is zero return 0 when the
  numerator is not positive, and UNBOUNDED (the DECIMAL(8,4) maximum, 9999.9999) when
  it is, so the database never receives NaN or infinity. Each says which case is which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

UNBOUNDED = 9999.9999  # DECIMAL(8,4) maximum: "no losses", "no drawdown", ...
Array = npt.NDArray[np.float64]


def _arr(values: Any) -> Array:
    out = np.asarray(values, dtype=np.float64)
    return out[np.isfinite(out)]


def _ratio(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return float(np.clip(numerator / denominator, -UNBOUNDED, UNBOUNDED))
    return UNBOUNDED if numerator > 0 else 0.0


# --- trade statistics ----------------------------------------------------------------------


def win_rate(pnl: Any) -> float:
    """Winning trades / all trades (a win is P&L > 0); 0 with no trades."""
    p = _arr(pnl)
    return float((p > 0).sum() / len(p)) if len(p) else 0.0


def gross_profit(pnl: Any) -> float:
    """Sum of winning P&L (>= 0)."""
    p = _arr(pnl)
    return float(p[p > 0].sum())


def gross_loss(pnl: Any) -> float:
    """Sum of losing P&L as a magnitude (>= 0)."""
    p = _arr(pnl)
    return float(-p[p < 0].sum())


def profit_factor(pnl: Any) -> float:
    """gross_profit / gross_loss; UNBOUNDED with profits and no losses, 0 with neither."""
    return _ratio(gross_profit(pnl), gross_loss(pnl))


@dataclass(frozen=True)
class WinLoss:
    avg_win: float  # mean of winning P&L (>= 0); 0 without wins
    avg_loss: float  # mean of losing P&L (<= 0, signed); 0 without losses
    largest_win: float  # max P&L (>= 0); 0 without wins
    largest_loss: float  # min P&L (<= 0, signed); 0 without losses


def win_loss(pnl: Any) -> WinLoss:
    p = _arr(pnl)
    wins, losses = p[p > 0], p[p < 0]
    return WinLoss(
        avg_win=float(wins.mean()) if len(wins) else 0.0,
        avg_loss=float(losses.mean()) if len(losses) else 0.0,
        largest_win=float(wins.max()) if len(wins) else 0.0,
        largest_loss=float(losses.min()) if len(losses) else 0.0,
    )


def trade_durations(minutes: Any) -> tuple[int, int]:
    """(average, maximum) trade duration in whole minutes; (0, 0) with no trades."""
    d = _arr(minutes)
    return (round(float(d.mean())), round(float(d.max()))) if len(d) else (0, 0)


# --- equity and returns ----------------------------------------------------------------------


def returns_from_equity(equity: Any) -> Array:
    """r_t = E_t / E_{t-1} - 1, skipping periods whose previous equity is not positive."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) < 2:
        return np.empty(0)
    prev, cur = e[:-1], e[1:]
    ok = (prev > 0) & np.isfinite(prev) & np.isfinite(cur)
    return cur[ok] / prev[ok] - 1


@dataclass(frozen=True)
class Drawdown:
    max_drawdown: float  # largest fall from a running peak, as a fraction >= 0
    duration_periods: int  # longest stretch of periods spent below a previous peak


def drawdowns(equity: Any) -> Array:
    """Drawdown_t = 1 - E_t / max(E_0..E_t), per period, as a magnitude (0 at a peak, or
    while the running peak is not positive)."""
    e = _arr(equity)
    if len(e) == 0:
        return e
    peaks = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd: Array = np.maximum(np.where(peaks > 0, 1 - e / peaks, 0.0), 0.0)
    return dd


def max_drawdown(equity: Any) -> Drawdown:
    """The largest drawdown (see drawdowns); duration = the longest run of consecutive
    periods below the running peak."""
    dd = drawdowns(equity)
    if len(dd) == 0:
        return Drawdown(0.0, 0)
    under = dd > 0
    longest = run = 0
    for flag in under:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return Drawdown(float(max(dd.max(), 0.0)), int(longest))


def annualised_return(returns: Any, periods: int = 365) -> float:
    """Geometric: (prod(1 + r)) ** (periods / n) - 1; 0 with no returns."""
    r = _arr(returns)
    if len(r) == 0:
        return 0.0
    growth = float(np.prod(1 + r))
    if growth <= 0:
        return -1.0
    return float(np.clip(growth ** (periods / len(r)) - 1, -1.0, UNBOUNDED))


def volatility(returns: Any, periods: int = 365) -> float:
    """Annualised standard deviation (ddof=1); 0 with fewer than two returns."""
    r = _arr(returns)
    return float(r.std(ddof=1) * math.sqrt(periods)) if len(r) > 1 else 0.0


def sharpe(returns: Any, *, risk_free: float = 0.0, periods: int = 365) -> float:
    """mean(r - rf/periods) / std(r - rf/periods, ddof=1) * sqrt(periods).
    0 with fewer than two returns; with zero volatility, UNBOUNDED if the mean excess
    return is positive, else 0."""
    r = _arr(returns)
    if len(r) < 2:
        return 0.0
    excess = r - risk_free / periods
    std = float(excess.std(ddof=1))
    if std <= 1e-15:
        return UNBOUNDED if excess.mean() > 0 else 0.0
    return _ratio(float(excess.mean()) * math.sqrt(periods), std)


def sortino(returns: Any, *, risk_free: float = 0.0, periods: int = 365) -> float:
    """mean(r - rf/periods) / downside deviation * sqrt(periods), where the downside
    deviation is sqrt(mean(min(r - rf/periods, 0)^2)) over all periods. 0 with fewer
    than two returns; with no downside, UNBOUNDED if the mean excess is positive, else 0."""
    r = _arr(returns)
    if len(r) < 2:
        return 0.0
    excess = r - risk_free / periods
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside <= 1e-15:
        return UNBOUNDED if excess.mean() > 0 else 0.0
    return _ratio(float(excess.mean()) * math.sqrt(periods), downside)


def calmar(returns: Any, *, periods: int = 365) -> float:
    """annualised_return / max_drawdown of the equity the returns compound to.
    With no drawdown: UNBOUNDED if the annualised return is positive, else 0."""
    r = _arr(returns)
    if len(r) == 0:
        return 0.0
    equity = np.concatenate([[1.0], np.cumprod(1 + r)])
    return _ratio(annualised_return(r, periods), max_drawdown(equity).max_drawdown)


def value_at_risk(returns: Any, level: float = 0.95) -> float:
    """Historical VaR: the loss not exceeded with probability `level`, as a positive
    return magnitude: -quantile(r, 1 - level) (linear interpolation), floored at 0.
    0 with no returns."""
    r = _arr(returns)
    if len(r) == 0:
        return 0.0
    return float(max(-np.quantile(r, 1 - level), 0.0))


def conditional_var(returns: Any, level: float = 0.95) -> float:
    """Historical CVaR (expected shortfall): -mean of the returns at or below the
    (1 - level) quantile, floored at 0; 0 with no returns. Always >= VaR."""
    r = _arr(returns)
    if len(r) == 0:
        return 0.0
    cut = np.quantile(r, 1 - level)
    tail = r[r <= cut]
    return float(max(-tail.mean(), value_at_risk(r, level), 0.0))


@dataclass(frozen=True)
class Benchmark:
    correlation: float  # Pearson, in [-1, 1]; 0 when either series is constant
    beta: float  # cov(r, b) / var(b); 0 when the benchmark is constant
    alpha: float  # annualised Jensen alpha: (mean(r - rf) - beta * mean(b - rf)) * periods


def against_benchmark(
    returns: Any, benchmark: Any, *, risk_free: float = 0.0, periods: int = 365
) -> Benchmark:
    """Correlation, beta and alpha of aligned return series (same periods, same order).
    Fewer than two aligned points: all 0."""
    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark, dtype=np.float64)
    n = min(len(r), len(b))
    r, b = r[:n], b[:n]
    ok = np.isfinite(r) & np.isfinite(b)
    r, b = r[ok], b[ok]
    if len(r) < 2:
        return Benchmark(0.0, 0.0, 0.0)
    rf = risk_free / periods
    var_b = float(b.var(ddof=1))
    std_r = float(r.std(ddof=1))
    cov = float(np.cov(r, b, ddof=1)[0, 1])
    corr = cov / (std_r * math.sqrt(var_b)) if std_r > 1e-15 and var_b > 1e-30 else 0.0
    beta = cov / var_b if var_b > 1e-30 else 0.0
    alpha = (float((r - rf).mean()) - beta * float((b - rf).mean())) * periods
    return Benchmark(
        correlation=float(np.clip(corr, -1.0, 1.0)),
        beta=float(np.clip(beta, -UNBOUNDED, UNBOUNDED)),
        alpha=float(np.clip(alpha, -UNBOUNDED, UNBOUNDED)),
    )
