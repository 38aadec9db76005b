"""`tradestore metrics compute`, `tradestore report`, `tradestore backtests ...`."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from tradestore.cli.common import console, open_store, run
from tradestore.cli.formatting import money, parse_when
from tradestore.cli.ops import metrics_app
from tradestore.cli.output import (
    LIMIT_MAX,
    Format,
    cell,
    format_option,
    limit_option,
    print_record,
    print_rows,
)

if TYPE_CHECKING:
    from tradestore.analytics.backtests import Backtest

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
    from tradestore.analytics.report import build_report
    from tradestore.analytics.report_html import render_html

    async def main() -> None:
        async with open_store() as store:
            s = await store.strategies.get_by_name(strategy)
            built = await build_report(store.reads, store.strategies, s, store.market_data)
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


PERCENT_FIELDS = ("total_return", "annualized_return", "volatility", "max_drawdown", "win_rate")
SUMMARY_FIELDS = (
    "name",
    "symbol",
    "timeframe",
    "status",
    "start_date",
    "end_date",
    "initial_capital",
    "total_return",
    "annualized_return",
    "volatility",
    "max_drawdown",
    "sharpe_ratio",
    "profit_factor",
    "total_trades",
    "winning_trades",
    "win_rate",
    "created_at",
)


def _summary(b: Backtest, fmt: Format) -> dict[str, Any]:
    """A backtest's fields; ratios as percentages in a table (exact values for scripts)."""
    fields = asdict(b)
    if fmt is Format.TABLE:
        for name in PERCENT_FIELDS:
            fields[name] = _pct(fields[name])
        fields["sharpe_ratio"] = _num(fields["sharpe_ratio"])
        fields["profit_factor"] = _num(fields["profit_factor"])
    return fields


def _listed(b: Backtest, fmt: Format) -> dict[str, Any]:
    table = fmt is Format.TABLE
    return {
        "id": str(b.id)[:8] if table else b.id,  # a prefix that `backtests show` takes
        "name": b.name,
        "symbol": b.symbol,
        "tf": b.timeframe,
        "status": b.status,
        "return": _pct(b.total_return) if table else b.total_return,
        "Sharpe": _num(b.sharpe_ratio) if table else b.sharpe_ratio,
        "max DD": _pct(b.max_drawdown) if table else b.max_drawdown,
        "trades": b.total_trades,
        "created": b.created_at,
    }


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2%}"


def _num(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2f}"


@backtests_app.command("list")
def backtests_list(
    strategy: str | None = typer.Option(None),
    symbol: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help="pending, running, completed or failed."),
    limit: int = limit_option(),
    fmt: Format = format_option(),
) -> None:
    """Backtests, newest first (the large arrays are never read)."""

    async def main() -> None:
        async with open_store() as store:
            sid = None if strategy is None else (await store.strategies.get_by_name(strategy)).id
            found = await store.backtests.find(
                strategy_id=sid, symbol=symbol, status=status, limit=limit
            )
        print_rows([_listed(b, fmt) for b in found], fmt, title="backtests")

    run(main)


@backtests_app.command("show")
def backtests_show(
    backtest_id: str = typer.Argument(..., help="An id, or a unique prefix of one."),
    fmt: Format = format_option(),
) -> None:
    """One backtest's fields and detailed results."""

    async def main() -> None:
        async with open_store() as store:
            b = await store.backtests.get(await store.backtests.resolve(backtest_id))
        record = _summary(b, fmt)
        if fmt is Format.TABLE:
            record["trade_list"] = f"{len(b.trade_list or [])} trade(s)"
        print_record(record, fmt, title=f"backtest {b.name}")

    run(main)


@backtests_app.command("compare")
def backtests_compare(
    backtest_ids: list[str] = typer.Argument(..., help="Two or more ids or unique prefixes."),
    fmt: Format = format_option(),
) -> None:
    """Chosen backtests side by side: one column per backtest, one row per figure."""

    async def main() -> None:
        async with open_store() as store:
            ids = [await store.backtests.resolve(i) for i in backtest_ids]
            chosen = [await store.backtests.get(i) for i in ids]
        if fmt is not Format.TABLE:
            rows = [
                {n: v for n, v in asdict(b).items() if n in ("id", *SUMMARY_FIELDS)} for b in chosen
            ]
            print_rows(rows, fmt, title="backtests compared")
            return
        columns = [_summary(b, fmt) for b in chosen]
        table = Table("", *(str(b.id)[:8] for b in chosen), title="backtests compared")
        for name in SUMMARY_FIELDS:
            table.add_row(name, *(cell(c[name]) for c in columns))
        console.print(table)

    run(main)


@backtests_app.command("best")
def backtests_best(
    symbol: str,
    timeframe: str,
    n: int = typer.Option(10, min=1, max=LIMIT_MAX, help="How many."),
    fmt: Format = format_option(),
) -> None:
    """The best completed backtests of a symbol and timeframe, by Sharpe."""

    async def main() -> None:
        async with open_store() as store:
            found = await store.backtests.best(symbol, timeframe, n)
        print_rows([_listed(b, fmt) for b in found], fmt, title=f"best for {symbol} {timeframe}")

    run(main)
