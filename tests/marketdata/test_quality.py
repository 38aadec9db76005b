"""Quality: gaps listed exactly, repeated candles, outliers, scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from tests.marketdata.helpers import candles, new_symbol
from tradestore import NotFound, TradeStore, ValidationError
from tradestore.marketdata.quality import quality_scores

T0 = datetime(2024, 2, 1, tzinfo=UTC)


async def test_gaps_are_listed_interval_by_interval(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = [r for i, r in enumerate(candles(60, start=T0)) if not (10 <= i < 13 or i == 40)]
    await store.market_data.store_candles(symbol, "1m", rows)
    gaps = await store.market_data.quality.gaps(symbol, "1m", T0, T0 + timedelta(hours=1))
    assert [(g.start, g.end, g.missing) for g in gaps] == [
        (T0 + timedelta(minutes=10), T0 + timedelta(minutes=12), 3),
        (T0 + timedelta(minutes=40), T0 + timedelta(minutes=40), 1),
    ]
    plan = await store.db.query(
        "EXPLAIN SELECT timestamp FROM market_data WHERE venue = 'dydx' AND symbol = 'X' "
        "AND timeframe = '1m' "
        "AND timestamp >= now() - interval '1 day' ORDER BY timestamp"
    )
    assert "Sort" not in " ".join(r["QUERY PLAN"] for r in plan)  # read in key order


async def test_report_finds_repeats_outliers_and_rescore_stores_them(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = candles(100, start=T0)
    rows[50] = rows[50] | {"high": Decimal(100000), "close": Decimal(90000)}  # a bad tick
    rows[70] = dict(rows[69], timestamp=rows[70]["timestamp"])  # an exact repeat
    await store.market_data.store_candles(symbol, "1m", rows)
    report = await store.market_data.quality.report(symbol, "1m", T0, T0 + timedelta(hours=2))
    assert report.candles == 100 and report.gaps == []
    assert T0 + timedelta(minutes=50) in report.outliers
    assert report.repeated == [T0 + timedelta(minutes=70)]
    await store.market_data.quality.rescore(symbol, "1m", T0, T0 + timedelta(hours=2))
    scores = await store.db.query(
        "SELECT timestamp, data_quality_score AS s FROM market_data WHERE symbol = %s "
        "AND data_quality_score < 100 ORDER BY timestamp",
        (symbol,),
    )
    low = {r["timestamp"]: r["s"] for r in scores}
    assert low[T0 + timedelta(minutes=50)] == 40 and low[T0 + timedelta(minutes=70)] == 80


def test_scores_of_empty_and_normal_candles() -> None:
    flat = np.array([5.0, 5.0, 5.0])
    scores = quality_scores(flat, flat, flat, flat, np.array([0.0, 1.0, 2.0]))
    assert list(scores) == [70, 100, 100]


async def test_gaps_default_to_the_stored_range_and_an_unknown_series_is_an_error(
    store: TradeStore,
) -> None:
    symbol = new_symbol()
    old = datetime(2015, 3, 2, tzinfo=UTC)  # a historical import, years ago
    rows = [r for i, r in enumerate(candles(30, start=old)) if i != 7]
    await store.market_data.store_candles(symbol, "1m", rows)
    gaps = await store.market_data.quality.gaps(symbol, "1m")
    assert [(g.start, g.missing) for g in gaps] == [(old + timedelta(minutes=7), 1)]
    report = await store.market_data.quality.report(symbol, "1m")
    assert report.candles == 29 and report.missing == 1
    with pytest.raises(NotFound, match="no NOPE-USD 1m candles"):
        await store.market_data.quality.report("NOPE-USD", "1m")


def _hourly(start: datetime, hours: int) -> list[dict[str, object]]:
    return candles(hours, start=start, step_s=3600)


async def test_fx_hours_know_the_weekend(store: TradeStore) -> None:
    """EURUSD-like hourly candles, none from Friday 22:00 to Sunday 22:00 UTC."""
    symbol = new_symbol()
    monday = datetime(2024, 3, 4, tzinfo=UTC)
    rows = [
        r
        for r in _hourly(monday, 14 * 24)
        if not (
            (r["timestamp"].weekday() == 4 and r["timestamp"].hour >= 22)  # type: ignore[attr-defined]
            or r["timestamp"].weekday() == 5  # type: ignore[attr-defined]
            or (r["timestamp"].weekday() == 6 and r["timestamp"].hour < 22)  # type: ignore[attr-defined]
        )
    ]
    del rows[30]  # one real hole on a weekday
    await store.market_data.store_candles(symbol, "1h", rows)
    always = await store.market_data.quality.gaps(symbol, "1h")
    assert len(always) == 3  # both weekends read as missing data around the clock
    fx = await store.market_data.quality.gaps(symbol, "1h", calendar="fx")
    assert [(g.start, g.missing) for g in fx] == [(monday + timedelta(hours=30), 1)]


async def test_exchange_calendars_know_holidays(store: TradeStore) -> None:
    """Daily NYSE candles: weekends and Good Friday are not gaps, a missing Tuesday is."""
    symbol = new_symbol()
    days = [datetime(2024, 3, 18, tzinfo=UTC) + timedelta(days=d) for d in range(21)]
    trading = [d for d in days if d.weekday() < 5 and d != datetime(2024, 3, 29, tzinfo=UTC)]
    missing = datetime(2024, 3, 26, tzinfo=UTC)
    rows = [r | {"timestamp": d} for r, d in zip(candles(len(trading)), trading, strict=True)]
    rows = [r for r in rows if r["timestamp"] != missing]
    await store.market_data.store_candles(symbol, "1d", rows)
    nyse = await store.market_data.quality.gaps(symbol, "1d", calendar="XNYS")
    assert [(g.start, g.missing) for g in nyse] == [(missing, 1)]
    with pytest.raises(ValidationError, match="unknown calendar"):
        await store.market_data.quality.gaps(symbol, "1d", calendar="NOWHERE")
