"""`tradestore market backfill|follow`: candles from an exchange source (dydx, or any
exchange CCXT supports as ccxt:<exchange id>)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradestore.cli.common import console, open_store, run
from tradestore.cli.formatting import parse_when, when
from tradestore.errors import ValidationError

if TYPE_CHECKING:
    from tradestore.exchange.backfill import BackfillProgress, BackfillResult
    from tradestore.store import TradeStore

SOURCE_HELP = "Where from: dydx, or ccxt:<exchange id> (ccxt:binance, ccxt:kraken, ...)."
MAX_PARALLEL = 4  # series backfilled at once (they share the source's rate limit)


def backfill(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    symbol: str = typer.Argument(
        ..., help="Ticker: BTC-USD on dydx, CCXT's BTC/USDT on ccxt:… (or use --symbols)."
    ),
    timeframe: str = typer.Argument(..., help="1m, 5m, 15m, 30m, 1h, 4h or 1d."),
    since: str = typer.Option(..., help="From, inclusive (ISO; UTC if no zone)."),
    until: str | None = typer.Option(None, help="Up to, exclusive (default: the open candle)."),
    symbols: str | None = typer.Option(
        None, help="More tickers: comma-separated, or @FILE with one per line."
    ),
) -> None:
    """Fetch what the series is missing in [since, until); run again to resume."""
    start = parse_when(since, option="--since")
    end = parse_when(until, option="--until")
    assert start is not None
    tickers = list(dict.fromkeys([symbol, *_more(symbols)]))

    async def main() -> list[BackfillResult]:
        async with open_store() as store:
            with _bar() as bar:
                return await _backfill_all(store, bar, source, tickers, timeframe, start, end)

    results = run(main)
    _summary(results)


def follow(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    symbols: list[str] = typer.Argument(..., help="Tickers, then the timeframe last."),
) -> None:
    """Keep series up to date: store each closed candle as it closes (Ctrl-C stops)."""
    if len(symbols) < 2:
        raise ValidationError("give one or more tickers and then the timeframe")
    *tickers, timeframe = symbols

    async def main() -> None:
        async with open_store(relay=True) as store:
            console.print(
                f"following {', '.join(tickers)} {timeframe} from {source} (Ctrl-C stops)"
            )
            async for candle in store.exchange.follow(source, tickers, timeframe):
                console.print(
                    f"{candle['symbol']} {when(candle['timestamp'])} close {candle['close']}"
                )

    run(main, until_interrupted=True)


async def _backfill_all(
    store: TradeStore,
    bar: Progress,
    source: str,
    tickers: list[str],
    timeframe: str,
    start: datetime,
    end: datetime | None,
) -> list[BackfillResult]:
    gate = asyncio.Semaphore(MAX_PARALLEL)

    async def one(ticker: str) -> BackfillResult:
        task = bar.add_task(ticker, total=None)

        def progress(p: BackfillProgress) -> None:
            bar.update(
                task,
                total=p.total_s or 1,
                completed=p.covered_s,
                description=f"{ticker}: {p.candles:,} candles, {p.pages:,} pages",
            )

        async with gate:
            return await store.exchange.backfill(
                source, ticker, timeframe, start, end, on_progress=progress
            )

    return list(await asyncio.gather(*(one(t) for t in tickers)))


def _more(symbols: str | None) -> list[str]:
    if not symbols:
        return []
    if symbols.startswith("@"):
        lines = Path(symbols[1:]).read_text().splitlines()
        return [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    return [s.strip() for s in symbols.split(",") if s.strip()]


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _summary(results: list[BackfillResult]) -> None:
    table = Table(
        "series", "pages", "fetched", "new", "updated", "rejected", "gaps left", title="backfill"
    )
    for r in results:
        table.add_row(
            f"{r.symbol} {r.timeframe.value}",
            f"{r.pages:,}",
            f"{r.fetched:,}",
            f"{r.inserted:,}",
            f"{r.updated:,}",
            f"{len(r.rejected):,}",
            f"{r.gaps_left:,}",
        )
    console.print(table)
    for r in results:
        for line in r.rejected[:5]:
            console.print(f"  {r.symbol}: rejected {line}")
