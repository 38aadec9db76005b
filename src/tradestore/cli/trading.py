"""`tradestore strategies|orders|trades ...`: trading records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import typer

from tradestore.cli.common import open_store, run
from tradestore.cli.formatting import parse_when
from tradestore.cli.output import (
    Format,
    format_option,
    limit_option,
    note,
    print_record,
    print_rows,
)

if TYPE_CHECKING:
    from tradestore.store import TradeStore

strategies_app = typer.Typer(help="Strategies.", no_args_is_help=True)
orders_app = typer.Typer(help="Orders.", no_args_is_help=True)
trades_app = typer.Typer(help="Trades.", no_args_is_help=True)


async def _strategy_id(store: TradeStore, name: str | None) -> UUID | None:
    return None if name is None else (await store.strategies.get_by_name(name)).id


@strategies_app.command("list")
def strategies_list(
    active: bool = typer.Option(False, "--active", help="Only active ones."),
    fmt: Format = format_option(),
) -> None:
    """Every strategy with its statistics."""

    async def main() -> None:
        async with open_store() as store:
            found = await (
                store.strategies.list_active() if active else store.strategies.list_all()
            )
        rows = [
            {
                "name": s.name,
                "version": s.version,
                "timeframe": s.timeframe.value,
                "symbols": s.symbols,
                "active": s.is_active,
                "mode": "paper" if s.is_paper_trading else "live",
                "trades": s.total_trades,
                "wins": s.winning_trades,
                "total P&L": s.total_pnl,
                "id": s.id,
            }
            for s in found
        ]
        print_rows(rows, fmt, title="strategies")

    run(main)


@strategies_app.command("show")
def strategies_show(name: str, fmt: Format = format_option()) -> None:
    """One strategy: its fields, configuration and performance summary."""

    async def main() -> None:
        async with open_store() as store:
            s = await store.strategies.get_by_name(name)
            perf = await store.strategies.performance(s.id)
        record: dict[str, Any] = {
            "id": s.id,
            "name": s.name,
            "version": s.version,
            "author": s.author,
            "timeframe": s.timeframe.value,
            "symbols": s.symbols,
            "active": s.is_active,
            "paper trading": s.is_paper_trading,
            "config": s.config,
            "closed trades": perf.total_trades,
            "winning trades": perf.winning_trades,
            "total P&L": perf.total_pnl,
            "average P&L": perf.avg_pnl,
            "best trade": perf.best_trade,
            "worst trade": perf.worst_trade,
            "avg duration (min)": perf.avg_duration_minutes,
            "created": s.created_at,
            "updated": s.updated_at,
        }
        print_record(record, fmt, title=f"strategy {s.name}")

    run(main)


@orders_app.command("list")
def orders_list(
    strategy: str | None = typer.Option(None, help="Strategy name."),
    status: str | None = typer.Option(None, help="PENDING, PARTIAL_FILLED, FILLED, ..."),
    since: str | None = typer.Option(None, help="Created from (ISO, now, 7d, yesterday...)."),
    until: str | None = typer.Option(None, help="Created before (same forms)."),
    limit: int = limit_option(),
    fmt: Format = format_option(),
) -> None:
    """Orders, newest first."""
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")

    async def main() -> None:
        async with open_store() as store:
            orders = await store.orders.list(
                strategy_id=await _strategy_id(store, strategy),
                status=status,
                since=start,
                until=end,
                limit=limit,
            )
        rows = [
            {
                "created": o.created_at,
                "symbol": o.symbol,
                "side": o.side,
                "type": o.type,
                "qty": o.quantity,
                "filled": o.filled_quantity,
                "avg price": o.avg_fill_price,
                "status": o.status,
                "client id": o.client_order_id,
                "id": o.id,
            }
            for o in orders
        ]
        print_rows(rows, fmt, title="orders")

    run(main)


@trades_app.command("list")
def trades_list(
    strategy: str | None = typer.Option(None, help="Strategy name."),
    symbol: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help="OPEN, CLOSED, CANCELLED, PARTIALLY_FILLED"),
    since: str | None = typer.Option(None, help="Entry time from (ISO, now, 7d, yesterday...)."),
    until: str | None = typer.Option(None, help="Entry time up to (same forms)."),
    limit: int = limit_option(),
    cursor: str | None = typer.Option(None, help="Next-page cursor printed by a previous call."),
    archived: bool = typer.Option(
        False, "--archived", help="Include archived trades (moved by `maintain run`)."
    ),
    fmt: Format = format_option(),
) -> None:
    """Trade history, newest first, a page at a time."""
    from tradestore.trading.models import TradeStatus, parse_enum
    from tradestore.trading.trades import TradeFilters

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
        rows = [
            {
                "entry": t.entry_time,
                "symbol": t.symbol,
                "side": t.side,
                "qty": t.filled_quantity,
                "entry price": t.entry_price,
                "exit price": t.exit_price,
                "P&L": t.pnl,
                "P&L %": t.pnl_percent,
                "status": t.status,
                "exit reason": t.exit_reason,
                "id": t.id,
            }
            for t in page.trades
        ]
        print_rows(rows, fmt, title=f"trades ({page.total} matching)")
        if page.next_cursor:
            note(f"next page: --cursor {page.next_cursor}", fmt)

    run(main)
