"""Resampling in SQL equals pandas resample(label="left", closed="left")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.marketdata.helpers import new_symbol
from tradestore import TradeStore, ValidationError
from tradestore.marketdata.resample import bucket_range
from tradestore.timeframes import Timeframe

T0 = datetime(2024, 6, 3, 21, 0, tzinfo=UTC)


PAIRS = [
    (src, tgt)
    for src in (Timeframe.M1, Timeframe.M5, Timeframe.M15, Timeframe.H1)
    for tgt in (Timeframe.M5, Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1)
    if tgt.seconds > src.seconds and tgt.seconds % src.seconds == 0
]


def random_candles(seed: int, start: datetime, tf: Timeframe, n: int, keep: float) -> pd.DataFrame:
    """Candles of tf from start with gaps, prices as exact 4-dp Decimals."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq=tf.pandas_rule, tz="UTC")
    idx = idx[rng.random(n) < keep]
    m = len(idx)
    close = 100 + np.cumsum(rng.integers(-30, 31, m)) / 100
    open_ = close + rng.integers(-10, 11, m) / 100
    high = np.maximum(open_, close) + rng.integers(0, 50, m) / 100
    low = np.minimum(open_, close) - rng.integers(0, 50, m) / 100
    volume = rng.integers(0, 10_000, m) / 1000
    volume[rng.random(m) < 0.1] = 0

    def exact(values: np.ndarray) -> list[Decimal]:
        return [Decimal(f"{v:.4f}") for v in values]

    return pd.DataFrame(
        {
            "open": exact(open_),
            "high": exact(high),
            "low": exact(low),
            "close": exact(close),
            "volume": exact(volume),
            "trades_count": rng.integers(0, 50, m),
        },
        index=pd.DatetimeIndex(idx, name="timestamp"),
    )


def pandas_expected(frame: pd.DataFrame, tf: Timeframe) -> pd.DataFrame:
    """pandas resample(label="left", closed="left") on exact Decimal columns; the vwap
    of a bucket is sum(close * volume) / sum(volume), rounded half up to 8 places."""
    buckets = frame.resample(tf.pandas_rule, label="left", closed="left")
    out = pd.DataFrame(
        {
            "open": buckets["open"].first(),
            "high": buckets["high"].apply(lambda s: max(s) if len(s) else None),
            "low": buckets["low"].apply(lambda s: min(s) if len(s) else None),
            "close": buckets["close"].last(),
            "volume": buckets["volume"].apply(lambda s: sum(s, Decimal(0))),
            "trades_count": buckets["trades_count"].sum(),
            "notional": (frame["close"] * frame["volume"])
            .resample(tf.pandas_rule, label="left", closed="left")
            .apply(lambda s: sum(s, Decimal(0))),
            "n": buckets["close"].count(),
        }
    )
    out = out[out["n"] > 0]
    out["vwap"] = [
        (notional / volume).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)
        if volume
        else None
        for notional, volume in zip(out["notional"], out["volume"], strict=True)
    ]
    return out


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    keep=st.floats(0.3, 1.0),
    pair=st.sampled_from(PAIRS),
    offset=st.integers(0, 3000),
    span=st.integers(1, 600),
)
async def test_resample_equals_pandas(
    store: TradeStore,
    seed: int,
    keep: float,
    pair: tuple[Timeframe, Timeframe],
    offset: int,
    span: int,
) -> None:
    """Any source/target pair, any start (not aligned), any data: every column equals
    pandas on the same rows, exactly."""
    src, tgt = pair
    symbol = new_symbol()
    data_start = T0 + offset * src.delta
    candles = random_candles(seed, data_start, src, 400, keep)
    await store.market_data.store_candles(symbol, src.value, candles)
    start = data_start + timedelta(minutes=(seed % 97))  # not aligned to anything
    end = start + span * src.delta
    got = await store.market_data.resample(symbol, tgt, start, end, source=src, exact=True)
    first, last = bucket_range(tgt, start, end)
    rows = candles[(candles.index >= first) & (candles.index < last)]
    expected = pandas_expected(rows, tgt)
    assert list(pd.DatetimeIndex(got.timestamp, tz="UTC")) == list(expected.index)
    for column in ("open", "high", "low", "close", "volume", "vwap"):
        assert list(getattr(got, column)) == list(expected[column]), column
    assert got.trades_count is not None
    assert list(got.trades_count) == [int(n) for n in expected["trades_count"]]


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


@pytest.mark.parametrize("target", [Timeframe.W1, Timeframe.MO1])
@pytest.mark.parametrize("source", [Timeframe.H1, Timeframe.D1])
async def test_weeks_and_months_equal_pandas_with_the_same_anchor(
    store: TradeStore, source: Timeframe, target: Timeframe
) -> None:
    """1w buckets start on Monday 00:00 UTC (pandas W-MON, left-closed and left-labelled),
    1M buckets on the 1st (pandas MS); both derived on read, never stored."""
    symbol = new_symbol()
    n = 200 if source is Timeframe.D1 else 200 * 24
    candles = random_candles(7, datetime(2023, 12, 29, tzinfo=UTC), source, n, 0.8)
    await store.market_data.store_candles(symbol, source.value, candles)
    start, end = datetime(2024, 1, 3, 12, tzinfo=UTC), datetime(2024, 6, 20, tzinfo=UTC)
    got = await store.market_data.get_historical_data(symbol, target, start, end, exact=True)
    first, last = bucket_range(target, start, end)
    assert first == (
        datetime(2024, 1, 8, tzinfo=UTC)
        if target is Timeframe.W1
        else datetime(2024, 2, 1, tzinfo=UTC)
    )
    expected = pandas_expected(candles[(candles.index >= first) & (candles.index < last)], target)
    assert list(pd.DatetimeIndex(got.timestamp, tz="UTC")) == list(expected.index)
    assert all(t.weekday() == 0 for t in expected.index) or target is Timeframe.MO1
    for column in ("open", "high", "low", "close", "volume", "vwap"):
        assert list(getattr(got, column)) == list(expected[column]), column
    with pytest.raises(ValidationError, match="derived from 1d"):
        await store.market_data.store_candles(symbol, target.value, candles)
