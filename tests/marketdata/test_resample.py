"""Resampling in SQL equals pandas resample(label="left", closed="left")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.marketdata.helpers import new_symbol
from tradestore import TradeStore, ValidationError
from tradestore.timeframes import Timeframe

T0 = datetime(2024, 6, 3, 21, 0, tzinfo=UTC)


def random_minutes(seed: int, n: int, keep: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(T0, periods=n, freq="1min", tz="UTC")
    idx = idx[rng.random(n) < keep]  # gaps
    close = np.round(100 + np.cumsum(rng.normal(0, 0.3, len(idx))), 4)
    open_ = np.round(close + rng.normal(0, 0.1, len(idx)), 4)
    high = np.round(np.maximum(open_, close) + rng.uniform(0, 0.5, len(idx)), 4)
    low = np.round(np.minimum(open_, close) - rng.uniform(0, 0.5, len(idx)), 4)
    volume = np.round(rng.uniform(0, 10, len(idx)), 3)
    volume[rng.random(len(idx)) < 0.05] = 0
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=pd.DatetimeIndex(idx, name="timestamp"),
    )


def pandas_resample(frame: pd.DataFrame, tf: Timeframe) -> pd.DataFrame:
    out = frame.resample(tf.pandas_rule, label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    counts = frame["close"].resample(tf.pandas_rule, label="left", closed="left").count()
    return out[counts > 0]


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    keep=st.floats(0.3, 1.0),
    tf=st.sampled_from([Timeframe.M5, Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1]),
)
async def test_resample_equals_pandas(
    store: TradeStore, seed: int, keep: float, tf: Timeframe
) -> None:
    symbol = new_symbol()
    minutes = random_minutes(seed, 1500, keep)
    await store.market_data.store_candles(symbol, "1m", minutes)
    got = (
        await store.market_data.resample(symbol, tf, T0, T0 + timedelta(minutes=1500))
    ).to_pandas()
    expected = pandas_resample(minutes, tf)
    np.testing.assert_array_equal(got.index.to_numpy(), expected.index.to_numpy())
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(
            got[column].to_numpy(), expected[column].to_numpy(), rtol=0, atol=1e-8, err_msg=column
        )


async def test_resample_exact_vwap_and_trades(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = [
        {
            "timestamp": T0 + timedelta(minutes=i),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": v,
            "trades_count": n,
        }
        for i, (o, h, lo, c, v, n) in enumerate(
            [
                ("10", "12", "9", "11", "2", 3),
                ("11", "13", "10", "12", "1", 1),
                ("12", "12", "8", "9", "0", 0),
                ("9", "10", "9", "10", "3", 2),
                ("10", "10", "10", "10", "1", 1),
            ]
        )
    ]
    await store.market_data.store_candles(symbol, "1m", rows)
    frame = await store.market_data.resample(
        symbol, "5m", T0, T0 + timedelta(minutes=5), exact=True
    )
    assert len(frame) == 1
    assert [str(frame.open[0]), str(frame.high[0]), str(frame.low[0]), str(frame.close[0])] == [
        "10.00000000",
        "13.00000000",
        "8.00000000",
        "10.00000000",
    ]
    assert str(frame.volume[0]) == "7.00000000" and frame.trades_count is not None
    assert frame.trades_count[0] == 7
    # (11*2 + 12*1 + 9*0 + 10*3 + 10*1) / 7
    assert frame.vwap is not None and str(frame.vwap[0]) == "10.57142857"


async def test_resample_rejects_finer_targets(store: TradeStore) -> None:
    with pytest.raises(ValidationError, match="coarser"):
        await store.market_data.resample("BTC-USD", "1m", T0, T0, source="5m")
