"""Every metric against values computed by hand; properties; edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradestore.analytics import metrics as m

PNL = [10.0, -5.0, 20.0, -15.0, 0.0]


def test_trade_statistics_by_hand() -> None:
    assert m.win_rate(PNL) == 2 / 5
    assert m.gross_profit(PNL) == 30.0 and m.gross_loss(PNL) == 20.0
    assert m.profit_factor(PNL) == 1.5
    wl = m.win_loss(PNL)
    assert (wl.avg_win, wl.avg_loss, wl.largest_win, wl.largest_loss) == (15.0, -10.0, 20.0, -15.0)
    assert m.trade_durations([30, 90, 60]) == (60, 90)


def test_drawdown_by_hand() -> None:
    dd = m.max_drawdown([100, 120, 90, 95, 130, 117])
    assert dd.max_drawdown == pytest.approx(0.25)  # 120 -> 90
    assert dd.duration_periods == 2  # 90, 95 below the 120 peak


def test_return_ratios_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    mean, std = r.mean(), r.std(ddof=1)
    assert m.sharpe(r, periods=365) == pytest.approx(mean / std * math.sqrt(365))
    rf = 0.0365
    ex = r - rf / 365
    assert m.sharpe(r, risk_free=rf) == pytest.approx(ex.mean() / ex.std(ddof=1) * math.sqrt(365))
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2))  # only -0.02 counts
    assert downside == pytest.approx(0.01)
    assert m.sortino(r, periods=252) == pytest.approx(mean / 0.01 * math.sqrt(252))
    growth = 1.01 * 0.98 * 1.03 * 1.0
    assert m.annualised_return(r, 365) == pytest.approx(growth ** (365 / 4) - 1)
    mdd = 1 - (1.01 * 0.98) / 1.01
    assert m.calmar(r) == pytest.approx(min((growth ** (365 / 4) - 1) / mdd, m.UNBOUNDED))


def test_var_and_cvar_by_hand() -> None:
    r = np.array(
        [
            -0.05,
            -0.03,
            -0.01,
            0.0,
            0.01,
            0.02,
            0.02,
            0.03,
            0.04,
            0.05,
            0.01,
            0.0,
            -0.02,
            0.01,
            0.02,
            0.03,
            0.0,
            0.01,
            0.02,
            -0.04,
        ]
    )
    q = np.quantile(r, 0.05)  # between -0.05 and -0.04
    assert m.value_at_risk(r) == pytest.approx(-q)
    assert m.conditional_var(r) == pytest.approx(0.05)  # only -0.05 is at or below q
    assert m.conditional_var(r) >= m.value_at_risk(r)


def test_benchmark_by_hand() -> None:
    b = np.array([0.01, -0.01, 0.02, 0.0, 0.01])
    r = 2 * b + 0.001  # beta 2, alpha 0.001 a period
    out = m.against_benchmark(r, b, periods=365)
    assert out.correlation == pytest.approx(1.0)
    assert out.beta == pytest.approx(2.0)
    assert out.alpha == pytest.approx(0.001 * 365)


@pytest.mark.parametrize("series", [[], [0.01], [0.0, 0.0, 0.0], [0.01, 0.01, 0.01]])
def test_edge_cases_are_finite(series: list[float]) -> None:
    values = [
        m.sharpe(series),
        m.sortino(series),
        m.calmar(series),
        m.value_at_risk(series),
        m.conditional_var(series),
        m.annualised_return(series),
        m.volatility(series),
        *m.against_benchmark(series, series).__dict__.values(),
    ]
    assert all(math.isfinite(v) for v in values)


def test_edge_case_values_are_defined() -> None:
    assert m.win_rate([]) == 0 and m.profit_factor([]) == 0
    assert m.profit_factor([5.0, 1.0]) == m.UNBOUNDED  # all winners
    assert m.sharpe([0.01, 0.01, 0.01]) == m.UNBOUNDED  # zero volatility, positive mean
    assert m.sharpe([0.0, 0.0]) == 0.0 and m.sortino([0.01, 0.02]) == m.UNBOUNDED
    assert m.max_drawdown([100.0]) == m.Drawdown(0.0, 0)  # a single day
    assert m.calmar([0.01, 0.02]) == m.UNBOUNDED  # no drawdown
    flat = m.against_benchmark([0.01, 0.02], [0.0, 0.0])  # a constant benchmark
    assert (flat.correlation, flat.beta) == (0.0, 0.0)
    assert flat.alpha == pytest.approx(0.015 * 365)  # all of the return is alpha


returns = st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=3, max_size=60)


@given(r=returns, k=st.floats(0.01, 100))
def test_sharpe_is_scale_free_without_risk_free_rate(r: list[float], k: float) -> None:
    a, b = m.sharpe(r), m.sharpe([x * k for x in r])
    if abs(a) < m.UNBOUNDED and np.std(r) > 1e-9:
        assert b == pytest.approx(a, rel=1e-6, abs=1e-9)


@given(equity=st.lists(st.floats(0.01, 1e6, allow_nan=False), min_size=1, max_size=80))
def test_max_drawdown_is_a_magnitude_within_0_and_1(equity: list[float]) -> None:
    dd = m.max_drawdown(equity)
    assert 0.0 <= dd.max_drawdown < 1.0 and dd.duration_periods >= 0


@given(r=returns)
def test_cvar_at_least_var_and_both_non_negative(r: list[float]) -> None:
    assert m.conditional_var(r) >= m.value_at_risk(r) >= 0.0
