"""Issue 16's wide read: 10,000,000 one-minute candles over 10 series (1M each), read
whole into pandas, against ArcticDB (LMDB, `read_batch`) and Parquet (a file a series),
in the same run. Ours is read as an async caller would: the 10 series at once.

History is written, its rollups refreshed and its closed periods packed into column
blocks first, as `bench peers` does for one series. This takes minutes (writing and
packing 10M candles); the figures are the read and the bytes on disk a candle.
ArcticDB is a bench-only dependency; without it its rows are left out.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.bench_marketdata import START, _frame
from bench.bench_peers import _atimed, _pandas, _timed, settle
from bench.harness import BenchContext, Result
from tradestore import TradeStore

SERIES = 10
PER_SERIES = 1_000_000
TOTAL = SERIES * PER_SERIES


async def _ours(store: TradeStore, arrays: list[np.ndarray]) -> dict[str, float]:
    tag = uuid.uuid4().hex[:6].upper()
    symbols = [f"W{tag}{i}-USD" for i in range(SERIES)]
    await store.partitions.ensure("market_data", START, START + timedelta(minutes=PER_SERIES + 10))
    md = store.market_data
    for symbol, array in zip(symbols, arrays, strict=True):
        await md.store_candles(symbol, "1m", array)
    await store.rollups.refresh()
    await store.compactor.compact()
    await store.compactor.compact()  # the next round gives back what the first emptied
    await settle(store)
    end = START + timedelta(minutes=PER_SERIES)

    async def read_one(symbol: str) -> Any:
        return (await md.get_historical_data(symbol, "1m", START, end)).to_pandas()

    async def read_all() -> None:
        frames = await asyncio.gather(*(read_one(s) for s in symbols))
        assert sum(len(f) for f in frames) == TOTAL

    read = statistics.median([await _atimed(read_all) for _ in range(3)])
    size = await store.db.query_value(
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
        "JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = 'market_data'::regclass"
    )
    size += await store.db.query_value("SELECT pg_total_relation_size('market_data_block')")
    return {"read": read, "bytes": float(size) / TOTAL}


def _parquet(arrays: list[np.ndarray], directory: Path) -> dict[str, float]:
    paths = []
    for i, array in enumerate(arrays):
        path = directory / f"series-{i}.parquet"
        pq.write_table(pa.Table.from_pandas(_pandas(array)), path)
        paths.append(path)

    def read_all() -> None:
        assert sum(len(pq.read_table(p).to_pandas()) for p in paths) == TOTAL

    read = statistics.median([_timed(read_all) for _ in range(3)])
    return {"read": read, "bytes": sum(p.stat().st_size for p in paths) / TOTAL}


def _arctic(arrays: list[np.ndarray], directory: Path) -> dict[str, float] | None:
    try:
        import arcticdb
    except ImportError:
        return None
    library = arcticdb.Arctic(f"lmdb://{directory}/arctic").get_library(
        "candles", create_if_missing=True
    )
    names = [f"series-{i}" for i in range(SERIES)]
    for name, array in zip(names, arrays, strict=True):
        library.write(name, _pandas(array))

    def read_all() -> None:
        assert sum(len(item.data) for item in library.read_batch(names)) == TOTAL

    read = statistics.median([_timed(read_all) for _ in range(3)])
    size = sum(f.stat().st_size for f in (directory / "arctic").rglob("*") if f.is_file())
    return {"read": read, "bytes": size / TOTAL}


async def run(ctx: BenchContext) -> list[Result]:
    arrays = [_frame(PER_SERIES, seed=100 + i)["array"] for i in range(SERIES)]
    ours = await _ours(ctx.store, arrays)
    directory = Path(tempfile.mkdtemp(prefix="tradestore-peers-wide-"))
    try:
        peers = {"Parquet files": await asyncio.to_thread(_parquet, arrays, directory)}
        arctic = await asyncio.to_thread(_arctic, arrays, directory)
        if arctic is not None:
            peers = {"ArcticDB (LMDB)": arctic, **peers}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    results = []
    for peer, figures in peers.items():
        results.append(
            Result(
                f"read {TOTAL:,} candles of {SERIES} series into pandas (vs {peer})",
                ours["read"] * 1000,
                figures["read"] * 1000,
                "ms",
                peer,
                higher_is_better=False,
            )
        )
        results.append(
            Result(
                f"bytes on disk per candle, {SERIES} series (vs {peer})",
                ours["bytes"],
                figures["bytes"],
                "B",
                peer,
                higher_is_better=False,
            )
        )
    return results
