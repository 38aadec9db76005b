"""Run the benchmarks: `python -m bench [name ...]` (names: the bench_<name>.py files).

Prints, for each, our figure, the raw baseline measured in the same run and the ratio
(ours / baseline for rates; baseline / ours for times: above 1.0 means ours is faster).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


RESULTS_FILE = Path(__file__).with_name("results.json")


async def main(names: list[str]) -> None:
    """Each benchmark in databases (and a Redis prefix) of its own, so one benchmark's
    events or rows never reach another; each result printed as it completes, all of them
    in a table at the end and in bench/results.json."""
    console = Console()
    results: list[tuple[str, Result]] = []
    for name in discover(names):
        console.print(f"running {name} …")
        module = importlib.import_module(f"bench.bench_{name}")
        try:
            for result in await _run_isolated(module, console):
                results.append((name, result))
                console.print(f"  {_line(result)}")
        except Exception as exc:  # one broken benchmark must not lose the others' results
            console.print(f"  [red]{name} failed:[/] {type(exc).__name__}: {exc}")
        _write(results)
    _table(console, [r for _, r in results])


async def _run_isolated(module: Any, console: Console) -> list[Result]:
    db_name, db_url = create_scratch_database()
    try:
        settings = bench_settings(db_url)
        async with TradeStore(settings) as store, _timescale(console) as timescale:
            await store.migrate()
            ctx = BenchContext(db_url, REDIS_URL, settings, store, timescale)
            return list(await module.run(ctx))
    finally:
        drop_scratch_database(db_name)


def _line(r: Result) -> str:
    return (
        f"{r.name}: {r.ours:,.2f} vs {r.baseline:,.2f} {r.unit} ({r.baseline_name}): {r.ratio:.2f}x"
    )


def _write(results: list[tuple[str, Result]]) -> None:
    when = datetime.now(UTC).isoformat(timespec="seconds")
    rows = [
        {
            "benchmark": name,
            "name": r.name,
            "ours": r.ours,
            "baseline": r.baseline,
            "unit": r.unit,
            "baseline_is": r.baseline_name,
            "ratio": r.ratio,
            "date": when,
        }
        for name, r in results
    ]
    RESULTS_FILE.write_text(json.dumps(rows, indent=2) + "\n")


def _table(console: Console, results: list[Result]) -> None:
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
    console.print(f"results written to {RESULTS_FILE}")


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
