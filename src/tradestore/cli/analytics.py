"""`tradestore metrics compute`, `tradestore report`, `tradestore backtests ...`."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from tradestore.analytics.backtests import Backtest
from tradestore.analytics.report import build_report, render_html
from tradestore.cli.common import console, open_store, run
from tradestore.cli.formatting import money, parse_when, when
from tradestore.cli.ops import metrics_app
from tradestore.trading.models import as_uuid

backtests_app = typer.Typer(help="Backtest results.", no_args_is_help=True)


@metrics_app.command("compute")
def compute(
    strategy: str | None = typer.Option(None, help="One strategy (default: all)."),
    since: str | None = typer.Option(None, help="First date (default: 30 days ago)."),
    until: str | None = typer.Option(None, help="Last date (default: today, UTC)."),
    recompute: bool = typer.Option(False, help="Recompute days that already have rows."),
) -> None:
    """Compute daily strategy_metrics rows (incremental unless --recompute)."""

    async def main() -> None:
        today = datetime.now(UTC).date()
        first = (
            parse_when(since, option="--since") or datetime.now(UTC) - timedelta(days=30)
        ).date()
        last = (parse_when(until, option="--until") or datetime.now(UTC)).date()
        last = min(last, today)
        async with open_store() as store:
            chosen = (
                [await store.strategies.get_by_name(strategy)]
                if strategy
                else await store.strategies.list_all()
            )
            days = (last - first).days + 1
            total = 0
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
            ) as bar:
                overall = bar.add_task("strategies", total=len(chosen))
                for s in chosen:
                    task = bar.add_task(f"  {s.name}", total=days)
                    result = await store.metrics.compute(
                        s.id,
                        first,
                        last,
                        recompute=recompute,
                        on_day=_advance(bar, task),
                    )
                    bar.update(task, completed=days)
                    total += len(result.computed)
                    bar.advance(overall)
        console.print(f"computed {total} day(s) for {len(chosen)} strategy(ies), {first} to {last}")

    run(main)


def report(
    strategy: str,
    html_file: Path | None = typer.Option(None, "--html", help="Write an HTML report here."),
) -> None:
    """A strategy's summary; with --html, a self-contained page with charts."""

    async def main() -> None:
        async with open_store() as store:
            s = await store.strategies.get_by_name(strategy)
            built = await build_report(store.db, store.strategies, s)
        table = Table("metric", "value", title=f"report: {s.name}")
        for k, v in built.summary.items():
            table.add_row(k, money(v) if not isinstance(v, str | int) else str(v))
        console.print(table)
        if html_file is not None:
            await asyncio.to_thread(html_file.write_text, render_html(built), encoding="utf-8")
            console.print(f"wrote {html_file}")

    run(main)


def _advance(bar: Progress, task: Any) -> Any:
    return lambda _day: bar.advance(task)


def _backtest_table(rows: list[Backtest], title: str) -> Table:
    table = Table(
        "id",
        "name",
        "symbol",
        "tf",
        "status",
        "return",
        "Sharpe",
        "max DD",
        "trades",
        "created",
        title=title,
    )
    for b in rows:
        table.add_row(
            str(b.id)[:8],
            b.name,
            b.symbol,
            b.timeframe,
            b.status,
            _pct(b.total_return),
            _num(b.sharpe_ratio),
            _pct(b.max_drawdown),
            str(b.total_trades or "-"),
            when(b.created_at),
        )
    return table


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2%}"


def _num(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2f}"


@backtests_app.command("list")
def backtests_list(
    strategy: str | None = typer.Option(None),
    symbol: str | None = typer.Option(None),
    status: str | None = typer.Option(None),
    limit: int = typer.Option(50),
) -> None:
    """Backtests, newest first (the large arrays are never read)."""

    async def main() -> None:
        async with open_store() as store:
            sid = None if strategy is None else (await store.strategies.get_by_name(strategy)).id
            rows = await store.backtests.find(
                strategy_id=sid, symbol=symbol, status=status, limit=limit
            )
        console.print(_backtest_table(rows, "backtests"))

    run(main)


@backtests_app.command("show")
def backtests_show(backtest_id: str) -> None:
    """One backtest's fields and detailed results."""

    async def main() -> None:
        async with open_store() as store:
            b = await store.backtests.get(as_uuid(backtest_id, field="backtest_id"))
        table = Table("field", "value", title=f"backtest {b.name}")
        for k, v in asdict(b).items():
            if k != "trade_list":
                table.add_row(k, "-" if v is None else str(v))
        table.add_row("trades in list", str(len(b.trade_list or [])))
        console.print(table)

    run(main)


@backtests_app.command("compare")
def backtests_compare(symbol: str, timeframe: str, n: int = typer.Option(10)) -> None:
    """The best completed backtests of a symbol and timeframe, by Sharpe."""

    async def main() -> None:
        async with open_store() as store:
            rows = await store.backtests.best(symbol, timeframe, n)
        console.print(_backtest_table(rows, f"best backtests for {symbol} {timeframe}"))

    run(main)
