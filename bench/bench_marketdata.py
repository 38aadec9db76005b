"""Market data on 1,000,000 one-minute candles, each against a raw baseline in the run.

- ingest (store_candles from a numpy structured array of floats) of closed history, which
  the ingest packs into column blocks itself, and the same ingest with compaction off
  (rows), each vs a raw binary COPY of the same rows into a fresh series of market_data
  (see _raw_copy);
- the row ingest vs the seed's multi-row INSERT ... ON CONFLICT with 8 parameters a row;
- reading the million candles (from blocks) into numpy / pandas vs a raw binary COPY TO
  of the same candles stored as rows;
- resampling them to 1h in SQL (from blocks, market_data_range) vs the same as rows.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from bench.harness import BenchContext, Result
from tradestore import TradeStore

N = 1_000_000
SEED_ROWS = 100_000  # the seed's INSERT is measured on 100k rows, reported per row
START = datetime(2021, 1, 1, tzinfo=UTC)


def _frame(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    close = np.round(30_000 + np.cumsum(rng.normal(0, 5, n)), 2)
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.round(np.maximum(open_, close) + rng.uniform(0, 3, n), 2)
    low = np.round(np.minimum(open_, close) - rng.uniform(0, 3, n), 2)
    volume = np.round(rng.uniform(0, 50, n), 4)
    ts = np.datetime64(START.replace(tzinfo=None), "us") + np.arange(n) * np.timedelta64(60, "s")
    dtype = [
        ("timestamp", "datetime64[us]"),
        ("open", "f8"),
        ("high", "f8"),
        ("low", "f8"),
        ("close", "f8"),
        ("volume", "f8"),
    ]
    data = np.empty(n, dtype=dtype)
    data["timestamp"], data["open"], data["high"] = ts, open_, high
    data["low"], data["close"], data["volume"] = low, close, volume
    return {"array": data}


async def _ensure_partitions(ctx: BenchContext, n: int) -> None:
    await ctx.store.partitions.ensure("market_data", START, START + timedelta(minutes=n))


async def _ours(
    store: TradeStore, data: np.ndarray, symbol: str, *, as_rows: bool = False
) -> float:
    """Rows a second of store_candles; `as_rows`: with compaction off
    (TRADESTORE_COMPACT_AFTER_DAYS=0), so that closed history is stored as rows."""
    compactor = store.compactor
    kept = compactor.compact_after
    if as_rows:
        compactor.compact_after = timedelta(0)
    try:
        started = time.perf_counter()
        result = await store.market_data.store_candles(symbol, "1m", data)
        elapsed = time.perf_counter() - started
    finally:
        compactor.compact_after = kept
    assert result.inserted == len(data), result
    return len(data) / elapsed


async def _raw_copy(db_url: str, source_symbol: str, symbol: str) -> float:
    """Raw binary COPY FROM of the same rows into a fresh series of market_data.

    The payload is the server's own binary COPY TO of the candles we ingested (rows or
    blocks: market_data_all), relabelled to a new symbol, prepared before timing: the
    baseline is the server's insert cost alone, with no client-side encoding at all.
    """
    columns = "symbol, timeframe, timestamp, open, high, low, close, volume"
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        payload = bytearray()
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY (SELECT %s::varchar, timeframe, timestamp, open, high, low, close, volume"
                " FROM market_data_all WHERE symbol = %s AND timeframe = '1m' ORDER BY timestamp)"
                " TO STDOUT (FORMAT BINARY)",
                (symbol, source_symbol),
            ) as out,
        ):
            async for chunk in out:
                payload += chunk
        started = time.perf_counter()
        async with (
            conn.cursor() as cur,
            cur.copy(f"COPY market_data ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            view = memoryview(payload)
            for i in range(0, len(view), 1 << 20):
                await copy.write(view[i : i + (1 << 20)])
        await conn.commit()
        return N / (time.perf_counter() - started)


async def _seed_insert(ctx: BenchContext, data: np.ndarray, symbol: str) -> float:
    per_statement = 65_535 // 8
    async with await psycopg.AsyncConnection.connect(ctx.db_url) as conn:
        rows = [
            (symbol, "1m", t.replace(tzinfo=UTC), *vals)
            for t, *vals in zip(
                data["timestamp"].astype(datetime),
                *(data[c].tolist() for c in ("open", "high", "low", "close", "volume")),
                strict=True,
            )
        ]
        started = time.perf_counter()
        for i in range(0, len(rows), per_statement):
            batch = rows[i : i + per_statement]
            row_sql = sql.SQL("(%s, %s, %s, %s, %s, %s, %s, %s)")
            statement = sql.SQL(
                "INSERT INTO market_data (symbol, timeframe, timestamp, open, high, low, close,"
                " volume) VALUES {} ON CONFLICT (venue, symbol, timeframe, timestamp) DO UPDATE"
                " SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,"
                " close = EXCLUDED.close, volume = EXCLUDED.volume"
            ).format(sql.SQL(", ").join([row_sql] * len(batch)))
            await conn.execute(
                statement,
                [v for row in batch for v in row],
            )
        await conn.commit()
        return len(rows) / (time.perf_counter() - started)


async def _sql_resample(ctx: BenchContext, symbol: str, rows_symbol: str) -> Result:
    """Resampling (SQL over market_data_range, as gaps, quality and export read) the
    packed million against the same candles stored as rows; alternating, medians of 3."""
    end = START + timedelta(minutes=N)
    md = ctx.store.market_data
    timings: dict[str, list[float]] = {symbol: [], rows_symbol: []}
    for _ in range(3):
        for name, runs in timings.items():
            started = time.perf_counter()
            hourly = await md.resample(name, "1h", START, end)
            runs.append(time.perf_counter() - started)
            assert len(hourly) == (N + 59) // 60
    return Result(
        "resample 1M packed candles to 1h (SQL)",
        statistics.median(timings[symbol]),
        statistics.median(timings[rows_symbol]),
        "s",
        "the same candles as rows",
        higher_is_better=False,
    )


async def _reads(ctx: BenchContext, symbol: str, rows_symbol: str) -> list[Result]:
    end = START + timedelta(minutes=N)
    md = ctx.store.market_data
    started = time.perf_counter()
    frame = await md.get_historical_data(symbol, "1m", START, end)
    numpy_s = time.perf_counter() - started
    started = time.perf_counter()
    frame = await md.get_historical_data(symbol, "1m", START, end)
    frame.to_pandas()
    pandas_s = time.perf_counter() - started
    assert len(frame) == N
    async with await psycopg.AsyncConnection.connect(ctx.db_url) as conn:
        started = time.perf_counter()
        size = 0
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY (SELECT timestamp, open, high, low, close, volume, trades_count, vwap"
                " FROM market_data WHERE symbol = %s AND timeframe = '1m'"
                " AND timestamp BETWEEN %s AND %s ORDER BY timestamp) TO STDOUT (FORMAT BINARY)",
                (rows_symbol, START, end),
            ) as copy,
        ):
            async for chunk in copy:
                size += len(chunk)
        raw_s = time.perf_counter() - started
    peak, result_bytes = await _read_peak_memory(ctx, symbol, end)
    return [
        Result(
            "read 1M candles: peak traced memory",
            peak / 1e6,
            result_bytes / 1e6,
            "MB",
            "the result's own arrays (target: peak <= 1.5x)",
            higher_is_better=False,
        ),
        Result(
            "read 1M candles into numpy",
            numpy_s,
            raw_s,
            "s",
            "raw binary COPY TO (bytes)",
            higher_is_better=False,
        ),
        Result(
            "read 1M candles into pandas",
            pandas_s,
            raw_s,
            "s",
            "raw binary COPY TO (bytes)",
            higher_is_better=False,
        ),
    ]


async def _read_peak_memory(ctx: BenchContext, symbol: str, end: datetime) -> tuple[int, int]:
    """Peak memory (tracemalloc: numpy's buffers are traced) while reading the range,
    and the size of the arrays the read returns."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        frame = await ctx.store.market_data.get_historical_data(symbol, "1m", START, end)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = sum(column.nbytes for column in frame.columns().values())
    return peak - base, result


async def run(ctx: BenchContext) -> list[Result]:
    await _ensure_partitions(ctx, N)
    data = _frame(N, 1)["array"]
    ours_symbol = f"OUR{uuid.uuid4().hex[:6].upper()}"
    ours = await _ours(ctx.store, data, ours_symbol)
    rows_symbol = f"ROW{uuid.uuid4().hex[:6].upper()}"
    as_rows = await _ours(ctx.store, data, rows_symbol, as_rows=True)
    raw = await _raw_copy(ctx.db_url, rows_symbol, f"RAW{uuid.uuid4().hex[:6].upper()}")
    seed = await _seed_insert(ctx, data[:SEED_ROWS], f"SEED{uuid.uuid4().hex[:6].upper()}")
    return [
        *(
            Result(label, rate, raw, "rows/s", "raw binary COPY into market_data")
            for label, rate in (
                ("ingest 1M closed 1m candles (packed at ingest)", ours),
                ("ingest 1M 1m candles as rows (compaction off)", as_rows),
            )
        ),
        Result(
            "ingest 1M 1m candles as rows (compaction off)",
            as_rows,
            seed,
            "rows/s",
            "seed multi-row INSERT ON CONFLICT (8 params/row)",
        ),
        *await _reads(ctx, ours_symbol, rows_symbol),
        await _sql_resample(ctx, ours_symbol, rows_symbol),
        *await _timescale_vs_native(ctx, data, ours_symbol),
    ]


COMPRESS_ALL = """
SELECT count(compress_chunk(c, if_not_compressed => TRUE)) FROM show_chunks('market_data') c
"""
BLOCK_BYTES = """
SELECT pg_total_relation_size('market_data_block')::float8 / sum(row_count)
  FROM market_data_block WHERE symbol = %s
"""


async def _timescale_vs_native(
    ctx: BenchContext, data: np.ndarray, native_symbol: str
) -> list[Result]:
    """The same million candles in TimescaleDB mode: the ingest (packed into blocks) against
    a raw binary COPY into the hypertable, the bytes a candle of our blocks against the
    raw copy's rows compressed by TimescaleDB, and a read against plain PostgreSQL."""
    ts = ctx.timescale
    if ts is None:
        return []
    symbol = f"TS{uuid.uuid4().hex[:6].upper()}"
    ts_rate = await _ours(ts, data, symbol)  # closed history: packed at ingest
    assert ts.settings.database_url is not None
    ts_url = ts.settings.database_url.get_secret_value()
    ts_raw = await _raw_copy(ts_url, symbol, f"TSRAW{uuid.uuid4().hex[:6].upper()}")
    await ts.db.execute(COMPRESS_ALL)  # the raw copy's rows: only they are rows
    compressed_bytes = int(await ts.db.query_value("SELECT hypertable_size('market_data')"))
    compressed_rows = int(await ts.db.query_value("SELECT count(*) FROM market_data"))
    block_bytes = float(await ts.db.query_value(BLOCK_BYTES, (symbol,)))
    end = START + timedelta(minutes=N)
    reads = []
    for store, name in ((ts, symbol), (ctx.store, native_symbol)):
        started = time.perf_counter()
        frame = await store.market_data.get_historical_data(name, "1m", START, end)
        reads.append(time.perf_counter() - started)
        assert len(frame) == N
    return [
        Result(
            "ingest 1M closed 1m candles, TimescaleDB (packed into blocks)",
            ts_rate,
            ts_raw,
            "rows/s",
            "raw binary COPY into the hypertable",
        ),
        Result(
            "bytes per closed 1m candle, TimescaleDB mode (column blocks)",
            block_bytes,
            compressed_bytes / compressed_rows,
            "bytes",
            "the same candles as rows, compressed by TimescaleDB",
            higher_is_better=False,
        ),
        Result(
            "read 1M candles into numpy, TimescaleDB mode",
            reads[0],
            reads[1],
            "s",
            "the same read on plain PostgreSQL",
            higher_is_better=False,
        ),
    ]
