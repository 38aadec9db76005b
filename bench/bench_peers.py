"""Candle history against the tools a researcher would otherwise pick, in the same run:
ArcticDB (local LMDB) and a Parquet file (pyarrow), on 1,000,000 one-minute candles of
one series (issue 16's table). Ratios are ours against the peer: above 1 means ours is
better; times are medians.

- write all 1M;
- read all 1M into pandas;
- a 1-day slice, cache miss (a different day each time), p50;
- append one live candle, p50 (Parquet has no append: rewriting the file is its cost);
- bytes on disk per candle.

Ours is measured as a backtest meets it: the history written (the ingest packs closed
periods into column blocks itself), its rollups refreshed, and what the ingest left as
rows (the periods its chunk boundaries split) packed by maintenance, timed on its own
line. With a TimescaleDB server (TRADESTORE_BENCH_TIMESCALE_URL) ours is measured in that
mode too, against the same peers (the same blocks there since migration 0029; maintenance
then compresses the chunks of what it left as rows).

ArcticDB is a bench-only dependency (`pip install arcticdb`); without it those rows are
left out and the Parquet ones still run.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.bench_marketdata import START, _frame
from bench.harness import BenchContext, Result
from tradestore import TradeStore
from tradestore.ops.compression import Compression
from tradestore.settings import TimeSeriesMode

N = 1_000_000
# what market_data's rows take: native partitions, or TimescaleDB's chunks (compressed
# ones included, which are not partitions of market_data)
ROWS_BYTES = {
    TimeSeriesMode.NATIVE: "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
    " JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = 'market_data'::regclass",
    TimeSeriesMode.TIMESCALE: "SELECT hypertable_size('market_data')",
}
SLICES = 20
APPENDS = 20


def _pandas(array: np.ndarray) -> Any:
    import pandas as pd

    frame = pd.DataFrame({name: array[name] for name in array.dtype.names})
    return frame.set_index(pd.DatetimeIndex(frame.pop("timestamp"), tz="UTC"))


def _timed(op: Any) -> float:
    started = time.perf_counter()
    op()
    return time.perf_counter() - started


async def settle(store: TradeStore) -> None:
    """Let the server finish the writing just done before reads are timed: the history a
    backtest reads was written long before, so its reads do not compete with the flush
    of that write (checkpoint) or with autovacuum's first pass over the new rows."""
    await store.db.execute("CHECKPOINT")
    await store.db.execute("VACUUM (ANALYZE) market_data_block, market_data_catalog")


async def _atimed(op: Any) -> float:
    started = time.perf_counter()
    await op()
    return time.perf_counter() - started


def _days(n: int) -> list[Any]:
    rng = np.random.default_rng(11)
    total_days = N // 1440 - 1
    return [START + timedelta(days=int(d)) for d in rng.choice(total_days, n, replace=False)]


async def _ours(store: TradeStore, array: np.ndarray) -> dict[str, float]:
    symbol = f"PEER{uuid.uuid4().hex[:6].upper()}-USD"
    await store.partitions.ensure("market_data", START, START + timedelta(minutes=N + 10))
    md = store.market_data
    write = await _atimed(lambda: md.store_candles(symbol, "1m", array))
    end = START + timedelta(minutes=N)
    await store.rollups.refresh()  # a period waiting for its rollups is not packed
    pack = await _atimed(store.compactor.compact)  # the periods chunk boundaries split
    await store.compactor.compact()  # the next round gives back what the first emptied
    mode = store.timeseries_mode or TimeSeriesMode.NATIVE
    await Compression(store.db, mode).compress_now()  # TimescaleDB: as maintenance does next
    await settle(store)
    read = statistics.median([await _atimed(lambda: _read_all(md, symbol, end)) for _ in range(3)])
    slices = [
        await _atimed(lambda d=d: md.get_historical_data(symbol, "1m", d, d + timedelta(days=1)))
        for d in _days(SLICES)
    ]
    appends = []
    for i in range(APPENDS):
        row = {
            "timestamp": end + timedelta(minutes=i),
            "open": "1",
            "high": "2",
            "low": "0.5",
            "close": "1.5",
            "volume": "3",
        }
        appends.append(await _atimed(lambda row=row: md.store_candles(symbol, "1m", [row])))
    size = await store.db.query_value(ROWS_BYTES[store.timeseries_mode or TimeSeriesMode.NATIVE])
    size += await store.db.query_value("SELECT pg_total_relation_size('market_data_block')")
    return {
        "pack": pack,
        "write": write,
        "read": read,
        "slice": statistics.median(slices),
        "append": statistics.median(appends),
        "bytes": float(size) / N,
    }


async def _read_all(md: Any, symbol: str, end: Any) -> None:
    frame = await md.get_historical_data(symbol, "1m", START, end)
    frame.to_pandas()


def _parquet(array: np.ndarray, directory: Path) -> dict[str, float]:
    table = pa.Table.from_pandas(_pandas(array))
    path = directory / "candles.parquet"
    write = _timed(lambda: pq.write_table(table, path))
    read = statistics.median([_timed(lambda: pq.read_table(path).to_pandas()) for _ in range(3)])
    slices = []
    for day in _days(SLICES):
        low, high = (
            pa.scalar(day, pa.timestamp("us", "UTC")),
            pa.scalar(day + timedelta(days=1), pa.timestamp("us", "UTC")),
        )
        slices.append(
            _timed(
                lambda low=low, high=high: pq.read_table(
                    path, filters=[("timestamp", ">=", low), ("timestamp", "<", high)]
                ).to_pandas()
            )
        )
    one = table.slice(0, 1)
    appends = [
        _timed(lambda: pq.write_table(pa.concat_tables([pq.read_table(path), one]), path))
        for _ in range(3)
    ]
    return {
        "write": write,
        "read": read,
        "slice": statistics.median(slices),
        "append": statistics.median(appends),
        "bytes": path.stat().st_size / N,
    }


def _arctic(array: np.ndarray, directory: Path) -> dict[str, float] | None:
    try:
        import arcticdb
    except ImportError:
        return None
    import pandas as pd

    frame = _pandas(array)
    library = arcticdb.Arctic(f"lmdb://{directory}/arctic").get_library(
        "candles", create_if_missing=True
    )
    write = _timed(lambda: library.write("series", frame))
    read = statistics.median([_timed(lambda: library.read("series").data) for _ in range(3)])
    slices = [
        _timed(
            lambda d=d: (
                library.read(
                    "series", date_range=(d, d + timedelta(days=1) - timedelta(microseconds=1))
                ).data
            )
        )
        for d in _days(SLICES)
    ]
    tail = frame.index[-1]
    appends = []
    for i in range(APPENDS):
        row = frame.iloc[-1:].copy()
        row.index = pd.DatetimeIndex([tail + timedelta(minutes=i + 1)], name=frame.index.name)
        appends.append(_timed(lambda row=row: library.append("series", row)))
    size = sum(f.stat().st_size for f in (directory / "arctic").rglob("*") if f.is_file())
    return {
        "write": write,
        "read": read,
        "slice": statistics.median(slices),
        "append": statistics.median(appends),
        "bytes": size / N,
    }


async def run(ctx: BenchContext) -> list[Result]:
    array = _frame(N, seed=5)["array"]
    modes = {"": await _ours(ctx.store, array)}
    if ctx.timescale is not None:
        modes["TimescaleDB mode: "] = await _ours(ctx.timescale, array)
    directory = Path(tempfile.mkdtemp(prefix="tradestore-peers-"))
    try:
        peers = {"Parquet file": await asyncio.to_thread(_parquet, array, directory)}
        arctic = await asyncio.to_thread(_arctic, array, directory)
        if arctic is not None:
            peers = {"ArcticDB (LMDB)": arctic, **peers}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    results = []
    for mode, ours in modes.items():
        results.append(
            Result(
                f"{mode}maintenance after writing {N:,} closed candles (packs the split periods)",
                ours["pack"] * 1000,
                ours["write"] * 1000,
                "ms",
                "our write of them",
                higher_is_better=False,
            )
        )
        results += _against_peers(mode, ours, peers)
    return results


def _against_peers(
    mode: str, ours: dict[str, float], peers: dict[str, dict[str, float]]
) -> list[Result]:
    results = []
    for peer, figures in peers.items():
        for key, label, unit in (
            ("write", f"write {N:,} candles", "s"),
            ("read", f"read {N:,} candles into pandas", "s"),
            ("slice", "1-day slice, cache miss, p50", "s"),
            ("append", "append one live candle, p50", "s"),
            ("bytes", "bytes on disk per candle", "B"),
        ):
            results.append(
                Result(
                    f"{mode}{label} (vs {peer})",
                    ours[key] * (1000 if unit == "s" else 1),
                    figures[key] * (1000 if unit == "s" else 1),
                    "ms" if unit == "s" else unit,
                    peer,
                    higher_is_better=False,
                )
            )
    return results
