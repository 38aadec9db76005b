"""Demo step: ingest three days of one-minute candles, read, resample, check, list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from rich.table import Table

from tradestore.cli.common import console
from tradestore.cli.formatting import when
from tradestore.store import TradeStore

SYMBOL = "BTC-USD"
MINUTES = 3 * 24 * 60


def synthetic_minutes(start: datetime) -> np.ndarray:
    rng = np.random.default_rng(42)
    close = np.round(64_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, MINUTES))), 2)
    open_ = np.concatenate([[64_000.0], close[:-1]])
    spread = np.abs(rng.normal(0, 12, MINUTES))
    data = np.zeros(
        MINUTES,
        dtype=[
            ("timestamp", "datetime64[us]"),
            ("open", "f8"),
            ("high", "f8"),
            ("low", "f8"),
            ("close", "f8"),
            ("volume", "f8"),
        ],
    )
    first = np.datetime64(start.replace(tzinfo=None), "us")
    data["timestamp"] = first + np.arange(MINUTES) * np.timedelta64(60, "s")
    data["open"], data["close"] = open_, close
    data["high"] = np.round(np.maximum(open_, close) + spread, 2)
    data["low"] = np.round(np.minimum(open_, close) - spread, 2)
    data["volume"] = np.round(rng.gamma(2.0, 1.5, MINUTES), 4)
    return np.delete(data, np.arange(1500, 1507))  # a seven-minute outage in the feed


async def step_market_data(store: TradeStore) -> None:
    start = (datetime.now(UTC) - timedelta(days=4)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    end = start + timedelta(minutes=MINUTES - 1)
    result = await store.market_data.store_candles(
        SYMBOL, "1m", synthetic_minutes(start), source="demo"
    )
    console.print(
        f"ingested {SYMBOL} 1m: {result.inserted:,} new, {result.updated:,} updated, "
        f"{result.unchanged:,} unchanged, {len(result.rejected)} rejected"
    )
    frame = await store.market_data.get_historical_data(SYMBOL, "1m", start, end)
    console.print(
        f"read back {len(frame):,} candles as numpy arrays; as an Arrow table: "
        f"{frame.to_arrow().num_rows:,} rows x {frame.to_arrow().num_columns} columns"
    )
    hourly = await store.market_data.resample(SYMBOL, "4h", start, end + timedelta(minutes=1))
    table = Table(
        "4h bucket (UTC)",
        "open",
        "high",
        "low",
        "close",
        "volume",
        title=f"{SYMBOL} resampled to 4h in SQL (first 4 of {len(hourly)})",
    )
    for i in range(min(4, len(hourly))):
        table.add_row(
            str(hourly.timestamp[i])[:16],
            f"{hourly.open[i]:,.2f}",
            f"{hourly.high[i]:,.2f}",
            f"{hourly.low[i]:,.2f}",
            f"{hourly.close[i]:,.2f}",
            f"{hourly.volume[i]:,.2f}",
        )
    console.print(table)
    gaps = await store.market_data.quality.gaps(SYMBOL, "1m", start, end)
    for gap in gaps:
        console.print(
            f"gap: {gap.missing} candles missing from {when(gap.start)} to {when(gap.end)}"
        )
    series = await store.market_data.list_series()
    console.print(
        "stored series: " + ", ".join(f"{s.symbol} {s.timeframe} ({s.row_count:,})" for s in series)
    )
