"""`tradestore strategies|orders|trades ...`: trading records as tables."""

from __future__ import annotations

from uuid import UUID

import typer
from rich.table import Table

from tradestore.cli.common import console, open_store, run
from tradestore.cli.formatting import money, parse_when, when
from tradestore.store import TradeStore
from tradestore.trading.models import TradeStatus, parse_enum
from tradestore.trading.trades import TradeFilters

strategies_app = typer.Typer(help="Strategies.", no_args_is_help=True)
orders_app = typer.Typer(help="Orders.", no_args_is_help=True)
trades_app = typer.Typer(help="Trades.", no_args_is_help=True)


async def _strategy_id(store: TradeStore, name: str | None) -> UUID | None:
    return None if name is None else (await store.strategies.get_by_name(name)).id


@strategies_app.command("list")
def strategies_list(
    active: bool = typer.Option(False, "--active", help="Only active ones."),
) -> None:
    """Every strategy with its statistics."""

    async def main() -> None:
        async with open_store() as store:
            rows = await (store.strategies.list_active() if active else store.strategies.list_all())
        table = Table(
            "name",
            "version",
            "timeframe",
            "symbols",
            "active",
            "mode",
            "trades",
            "wins",
            "total P&L",
            title="strategies",
        )
        for s in rows:
            table.add_row(
                s.name,
                s.version,
                s.timeframe.value,
                ",".join(s.symbols),
                "yes" if s.is_active else "no",
                "paper" if s.is_paper_trading else "[bold]live[/]",
                str(s.total_trades),
                str(s.winning_trades),
                money(s.total_pnl),
            )
        console.print(table)

    run(main)


@strategies_app.command("show")
def strategies_show(name: str) -> None:
    """One strategy: its fields, configuration and performance summary."""

    async def main() -> None:
        async with open_store() as store:
            s = await store.strategies.get_by_name(name)
            perf = await store.strategies.performance(s.id)
        table = Table("field", "value", title=f"strategy {s.name}", show_header=False)
        for field, value in (
            ("id", str(s.id)),
            ("version", s.version),
            ("author", s.author or "-"),
            ("timeframe", s.timeframe.value),
            ("symbols", ", ".join(s.symbols)),
            ("active", str(s.is_active)),
            ("paper trading", str(s.is_paper_trading)),
            ("config", str(s.config)),
            ("closed trades", str(perf.total_trades)),
            ("winning trades", str(perf.winning_trades)),
            ("total P&L", money(perf.total_pnl)),
            ("average P&L", money(perf.avg_pnl)),
            ("best / worst", f"{money(perf.best_trade)} / {money(perf.worst_trade)}"),
            ("avg duration (min)", money(perf.avg_duration_minutes)),
            ("created", when(s.created_at)),
            ("updated", when(s.updated_at)),
        ):
            table.add_row(field, value)
        console.print(table)

    run(main)


@orders_app.command("list")
def orders_list(
    strategy: str | None = typer.Option(None, help="Strategy name."),
    status: str | None = typer.Option(None, help="PENDING, PARTIAL_FILLED, FILLED, ..."),
    limit: int = typer.Option(50, min=1, max=10_000),
) -> None:
    """Orders, newest first."""

    async def main() -> None:
        async with open_store() as store:
            orders = await store.orders.list(
                strategy_id=await _strategy_id(store, strategy), status=status, limit=limit
            )
        table = Table(
            "created",
            "symbol",
            "side",
            "type",
            "qty",
            "filled",
            "avg price",
            "status",
            "client id",
            title="orders",
        )
        for o in orders:
            table.add_row(
                when(o.created_at),
                o.symbol,
                o.side.value,
                o.type.value,
                money(o.quantity),
                money(o.filled_quantity),
                money(o.avg_fill_price),
                o.status.value,
                o.client_order_id or "-",
            )
        console.print(table)

    run(main)


@trades_app.command("list")
def trades_list(
    strategy: str | None = typer.Option(None, help="Strategy name."),
    symbol: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help="OPEN, CLOSED, CANCELLED, PARTIALLY_FILLED"),
    since: str | None = typer.Option(None, help="Entry time from (ISO; UTC if no zone)."),
    until: str | None = typer.Option(None, help="Entry time up to (ISO; UTC if no zone)."),
    limit: int = typer.Option(50, min=1, max=10_000),
    cursor: str | None = typer.Option(None, help="Next-page cursor printed by a previous call."),
    archived: bool = typer.Option(
        False, "--archived", help="Include archived trades (moved by `maintain run`)."
    ),
) -> None:
    """Trade history, newest first, a page at a time."""

    async def main() -> None:
        async with open_store() as store:
            filters = TradeFilters(
                strategy_id=await _strategy_id(store, strategy),
                symbol=symbol,
                status=None if status is None else parse_enum(TradeStatus, status, field="status"),
                date_from=parse_when(since, option="--since"),
                date_to=parse_when(until, option="--until"),
            )
            page = await store.trades.history(
                filters, page_size=limit, cursor=cursor, include_archived=archived
            )
        table = Table(
            "entry",
            "symbol",
            "side",
            "qty",
            "entry price",
            "exit price",
            "P&L",
            "P&L %",
            "status",
            "exit reason",
            title=f"trades ({page.total} matching)",
        )
        for t in page.trades:
            table.add_row(
                when(t.entry_time),
                t.symbol,
                t.side.value,
                money(t.filled_quantity),
                money(t.entry_price),
                money(t.exit_price),
                money(t.pnl),
                "-" if t.pnl_percent is None else f"{t.pnl_percent}",
                t.status.value,
                t.exit_reason or "-",
            )
        console.print(table)
        if page.next_cursor:
            console.print(f"next page: --cursor {page.next_cursor}")

    run(main)
