"""Run the benchmarks: `python -m bench [name ...]` (names: the bench_<name>.py files).

Prints, for each, our figure, the raw baseline measured in the same run and the ratio
(ours / baseline for rates; baseline / ours for times: above 1.0 means ours is faster).
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rich.console import Console
from rich.table import Table

import bench
from bench.harness import (
    REDIS_URL,
    TIMESCALE_ADMIN_URL,
    BenchContext,
    Result,
    bench_settings,
    create_scratch_database,
    drop_scratch_database,
)
from tradestore import TradeStore


def discover(names: list[str]) -> list[str]:
    found = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )
    unknown = set(names) - set(found)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have {found}")
    return names or found


async def main(names: list[str]) -> None:
    console = Console()
    db_name, db_url = create_scratch_database()
    results: list[Result] = []
    try:
        settings = bench_settings(db_url)
        async with TradeStore(settings) as store, _timescale(console) as timescale:
            await store.migrate()
            ctx = BenchContext(db_url, REDIS_URL, settings, store, timescale)
            for name in discover(names):
                console.print(f"running {name} …")
                module = importlib.import_module(f"bench.bench_{name}")
                results.extend(await module.run(ctx))
    finally:
        drop_scratch_database(db_name)
    table = Table("benchmark", "ours", "baseline", "unit", "baseline is", "ratio")
    for r in results:
        table.add_row(
            r.name,
            f"{r.ours:,.2f}",
            f"{r.baseline:,.2f}",
            r.unit,
            r.baseline_name,
            f"{r.ratio:.2f}x",
        )
    console.print(table)
    console.print("ratio > 1.00x: ours is faster than the baseline; < 1.00x: slower.")


@asynccontextmanager
async def _timescale(console: Console) -> AsyncIterator[TradeStore | None]:
    """A migrated TimescaleDB-mode store in a scratch database, when a server is set."""
    if not TIMESCALE_ADMIN_URL:
        console.print("no TimescaleDB server (TRADESTORE_BENCH_TIMESCALE_URL): native only")
        yield None
        return
    name, url = create_scratch_database(TIMESCALE_ADMIN_URL)
    try:
        async with TradeStore(bench_settings(url, "timescale")) as store:
            await store.migrate()
            yield store
    finally:
        drop_scratch_database(name, TIMESCALE_ADMIN_URL)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
