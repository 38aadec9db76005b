"""Demo step: a strategy, an order filled twice, a trade opened from it and closed."""

from __future__ import annotations

import uuid

from rich.table import Table

from tradestore.cli.common import console
from tradestore.cli.formatting import money
from tradestore.errors import NotFound
from tradestore.store import TradeStore
from tradestore.trading.models import Strategy
from tradestore.trading.trades import TradeFilters

DEMO_STRATEGY = "demo-sma-cross"


async def demo_strategy(store: TradeStore) -> Strategy:
    try:
        return await store.strategies.get_by_name(DEMO_STRATEGY)
    except NotFound:
        return await store.strategies.create(
            {
                "name": DEMO_STRATEGY,
                "version": "1.0",
                "author": "tradestore demo",
                "config": {"fast": 10, "slow": 30},
                "timeframe": "1h",
                "symbols": ["BTC-USD", "ETH-USD"],
                "is_active": True,
            }
        )


async def step_trading(store: TradeStore) -> None:
    strategy = await demo_strategy(store)
    client_id = f"demo-{uuid.uuid4().hex[:8]}"
    request = {
        "strategy_id": strategy.id,
        "symbol": "BTC-USD",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.5",
        "price": "64000",
        "client_order_id": client_id,
    }
    order = await store.orders.create(request)
    retried = await store.orders.create(request)  # a retry after a timeout, say
    console.print(
        f"order {order.id} created; retried create returned the same order: "
        f"{retried.id == order.id}"
    )
    await store.orders.record_fill(order.id, quantity="0.2", price="63990.5", fee="0.64")
    filled = await store.orders.record_fill(order.id, quantity="0.3", price="63995", fee="0.96")
    console.print(
        f"filled {money(filled.filled_quantity)} at avg {money(filled.avg_fill_price)} "
        f"({filled.status.value}), fees {money(filled.fees)}"
    )
    trade = await store.trades.open_from_order(order.id, entry_tag="sma-cross-up")
    closed = await store.trades.close(
        trade.id, exit_price="65210.25", exit_reason="TAKE_PROFIT", exit_fee="1.3"
    )
    console.print(
        f"trade closed: P&L {money(closed.pnl)} ({closed.pnl_percent}%), "
        f"fees counted once: {money(closed.fees)}"
    )
    fresh = await store.strategies.get(strategy.id)
    page = await store.trades.history(TradeFilters(strategy_id=strategy.id), page_size=5)
    table = Table(
        "entry",
        "symbol",
        "qty",
        "entry",
        "exit",
        "P&L",
        "status",
        title=f"{fresh.name}: {fresh.total_trades} closed trades, "
        f"{fresh.winning_trades} winners, total P&L {money(fresh.total_pnl)}",
    )
    for t in page.trades:
        table.add_row(
            f"{t.entry_time:%Y-%m-%d %H:%M}",
            t.symbol,
            money(t.filled_quantity),
            money(t.entry_price),
            money(t.exit_price),
            money(t.pnl),
            t.status.value,
        )
    console.print(table)
