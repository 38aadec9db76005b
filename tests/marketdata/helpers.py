from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradestore import TradeStore
from tradestore.marketdata.rollups import TARGETS
from tradestore.timeframes import Timeframe


def new_symbol() -> str:
    return f"T{uuid.uuid4().hex[:8].upper()}-USD"


def candles(
    n: int, *, start: datetime | None = None, step_s: int = 60, base: str = "100.12345678"
) -> list[dict[str, Any]]:
    start = start or datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    price = Decimal(base)
    for i in range(n):
        o = price + Decimal(i) / 100
        out.append(
            {
                "timestamp": start + timedelta(seconds=step_s * i),
                "open": o,
                "high": o + Decimal("1.00000001"),
                "low": o - Decimal("0.5"),
                "close": o + Decimal("0.25"),
                "volume": Decimal("12.5") + i,
                "trades_count": i,
            }
        )
    return out


def uneven_candles(n: int, start: datetime) -> list[dict[str, Any]]:
    """Candles with unknown vwap and trade counts in places, and a sub-cent price."""
    rows = candles(n, start=start)
    for i, row in enumerate(rows):
        if i % 7 == 0:
            row["trades_count"] = None
        if i % 5 == 0:
            row["vwap"] = row["close"] - Decimal("0.00000001")
    return rows


async def assert_rollups_equal_resampling(
    store: TradeStore,
    symbol: str,
    start: datetime,
    end: datetime,
    timeframes: tuple[Timeframe, ...] = TARGETS,
) -> dict[Timeframe, int]:
    """Each timeframe's rollup of [start, end) equals resampling the stored candles, column
    for column, exactly; how many candles each has (at least one)."""
    counts = {}
    for tf in timeframes:
        rolled = await store.rollups.read(symbol, tf, start, end, exact=True)
        direct = await store.market_data.resample(symbol, tf, start, end, exact=True)
        assert len(rolled) == len(direct) > 0, tf
        for name, values in direct.columns().items():
            assert list(rolled.columns()[name]) == list(values), (tf, name)
        counts[tf] = len(rolled)
    return counts
