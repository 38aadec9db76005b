"""TimescaleDB mode: reads of a series after a year of live candles was packed into blocks.

Live 1m candles arrive as rows, one chunk a day; maintenance packs each closed day into
a block and, in its next round, drops the chunks that emptied (today's stays).
Measured: the latest 10 candles and a full-range read, against the same reads with the
year's emptied chunks still there (as the compaction left them before: recreated here by
an insert and a delete in each day). Needs a TimescaleDB server
(TRADESTORE_BENCH_TIMESCALE_URL); without one it reports nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from bench.harness import BenchContext, Result
from tradestore import TradeStore

DAYS = 365
PER_DAY = 24  # a candle an hour of the day's 1440 slots: the chunk count is what matters
READS = 30
SYMBOL = "CHUNKS-USD"
START = datetime(2024, 1, 1, tzinfo=UTC)
ONE_ROW = (
    "INSERT INTO market_data (venue, symbol, timeframe, timestamp, open, high, low, close,"
    " volume) VALUES ('dydx', 'EMPTY-USD', '1m', %s, 1, 1, 1, 1, 1)"
)


def _candle(ts: datetime) -> dict[str, object]:
    return {"timestamp": ts, "open": "1", "high": "2", "low": "0.5", "close": "1.5", "volume": "3"}


async def _p50(op: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(READS):
        started = time.perf_counter()
        await op()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _reads(store: TradeStore) -> tuple[float, float]:
    md, end = store.market_data, datetime.now(UTC)
    latest = await _p50(lambda: md.get_latest_candles(SYMBOL, "1m", 10))
    full = await _p50(lambda: md.get_historical_data(SYMBOL, "1m", START, end))
    return latest, full


async def run(ctx: BenchContext) -> list[Result]:
    store = ctx.timescale
    if store is None:
        return []
    history = [
        _candle(START + timedelta(days=d, minutes=m))
        for d in range(DAYS)
        for m in range(0, 1440, 1440 // PER_DAY)
    ]
    as_rows = store.settings.model_copy(update={"compact_after_days": 0})
    async with TradeStore(as_rows) as live:  # rows, as live ingest leaves them
        await live.market_data.store_candles(SYMBOL, "1m", history)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    await store.market_data.store_candles(SYMBOL, "1m", [_candle(now)])  # today's: a row
    await store.rollups.refresh()
    await store.compactor.compact()
    await store.compactor.compact()  # the next round: drops what the first emptied
    chunks = "SELECT count(*) FROM show_chunks('market_data')"
    left = await store.db.query_value(chunks)
    latest, full = await _reads(store)
    for day in range(DAYS):  # the emptied chunks, as they were left before
        await store.db.execute(ONE_ROW, (START + timedelta(days=day),))
    await store.db.execute("DELETE FROM market_data WHERE symbol = 'EMPTY-USD'")
    kept = await store.db.query_value(chunks)
    latest_kept, full_kept = await _reads(store)
    note = f"the same with the {kept - left} emptied chunks kept"
    return [
        Result(
            f"TimescaleDB mode: latest 10 candles, {DAYS} days packed ({left} chunk(s) left)",
            latest,
            latest_kept,
            "ms",
            note,
            higher_is_better=False,
        ),
        Result(
            f"TimescaleDB mode: read all {len(history):,} candles of {DAYS} packed days",
            full,
            full_kept,
            "ms",
            note,
            higher_is_better=False,
        ),
    ]
