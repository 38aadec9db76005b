"""Trades: opening, partial fills, closing exactly once, statistics, history."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import open_stores
from tests.trading.helpers import new_strategy
from tradestore import Conflict, TradeStore, ValidationError
from tradestore.trading.models import Side, TradeStatus
from tradestore.trading.pnl import close_pnl
from tradestore.trading.trades import TradeFilters


def trade_data(strategy_id: uuid.UUID, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "strategy_id": strategy_id,
        "symbol": "ETH-USD",
        "side": "BUY",
        "entry_price": "2000",
        "quantity": "2",
        "fees": "1",
    }
    data.update(overrides)
    return data


async def test_open_close_long_and_short(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    long = await store.trades.open(
        trade_data(
            strategy.id,
            stop_loss_price="1900",
            take_profit_price="2200",
            entry_signal={"rsi": 28.5},
            entry_tag="oversold",
        )
    )
    assert long.status is TradeStatus.OPEN and long.filled_quantity == Decimal(2)
    assert long.stop_loss_price == Decimal("1900") and long.entry_signal == {"rsi": 28.5}
    closed = await store.trades.close(
        long.id,
        exit_price="2100.5",
        exit_reason="TAKE_PROFIT",
        exit_fee="1.5",
        exit_signal={"rsi": 71},
    )
    assert closed.pnl == Decimal("198.5")  # 100.5 * 2 - (1 + 1.5)
    assert closed.fees == Decimal("2.5") and closed.pnl_percent == Decimal("4.9625")
    assert closed.exit_signal == {"rsi": 71} and closed.status is TradeStatus.CLOSED
    short = await store.trades.open(trade_data(strategy.id, side="SELL", fees="0"))
    closed_short = await store.trades.close(short.id, exit_price="2100", exit_reason="STOP_LOSS")
    assert closed_short.pnl == Decimal("-200")


async def test_exactly_one_of_many_concurrent_closers_wins(migrated_db_url: str) -> None:
    async with open_stores(migrated_db_url, 4) as stores:
        strategy = await new_strategy(stores[0])
        trade = await stores[0].trades.open(trade_data(strategy.id))

        async def close(i: int) -> str:
            try:
                await stores[i % 4].trades.close(
                    trade.id, exit_price=str(2000 + i), exit_reason="SIGNAL"
                )
                return "won"
            except Conflict:
                return "conflict"

        outcomes = await asyncio.gather(*(close(i) for i in range(16)))
        assert outcomes.count("won") == 1 and outcomes.count("conflict") == 15
        fresh = await stores[1].strategies.get(strategy.id)
        assert fresh.total_trades == 1  # counted once
        events = await stores[0].db.query_value(
            "SELECT count(*) FROM event_outbox WHERE event_type = 'trade.closed' "
            "AND aggregate_id = %s",
            (str(trade.id),),
        )
        assert events == 1


async def test_a_close_racing_fills_counts_exactly_the_fills_before_it(
    migrated_db_url: str,
) -> None:
    """Fills of a partially filled trade race its close on other connections: the close
    either sees a fill or the fill is refused; the P&L is that of what was filled."""
    async with open_stores(migrated_db_url, 3) as stores:
        strategy = await new_strategy(stores[0])
        for _ in range(5):
            trade = await stores[0].trades.open(
                trade_data(strategy.id, quantity="20", filled_quantity="1", fees="0")
            )

            async def fill(i: int, trade_id: uuid.UUID = trade.id) -> bool:
                try:
                    await stores[i % 2].trades.add_fill(
                        trade_id, quantity="1", price=str(2000 + 10 * i), fee="0.01"
                    )
                    return True
                except Conflict:
                    return False

            closing = stores[2].trades.close(trade.id, exit_price="2100", exit_reason="SIGNAL")
            *filled, closed = await asyncio.gather(*(fill(i) for i in range(12)), closing)
            assert closed.filled_quantity == 1 + sum(filled)  # every fill that won is in
            expected = close_pnl(
                side=Side.BUY,
                entry_price=closed.entry_price,
                exit_price=Decimal(2100),
                quantity=closed.filled_quantity,
                entry_fees=Decimal("0.01") * sum(filled),
                exit_fees=Decimal(0),
            )
            assert (closed.pnl, closed.fees) == (expected.pnl, expected.fees)
            final = await stores[0].trades.get(trade.id)
            assert final.filled_quantity == closed.filled_quantity  # none landed after
        fresh = await stores[1].strategies.get(strategy.id)
        assert fresh.total_trades == 5


async def test_strategy_statistics_equal_the_trades_table(migrated_db_url: str) -> None:
    async with open_stores(migrated_db_url, 3) as stores:
        strategy = await new_strategy(stores[0])
        trades = [
            await stores[0].trades.open(trade_data(strategy.id, fees="0.3")) for _ in range(12)
        ]
        exits = ["2010", "1990", "2000.15", "2100", "1500", "2000"] * 2
        await asyncio.gather(
            *(
                stores[i % 3].trades.close(t.id, exit_price=exits[i], exit_reason="SIGNAL")
                for i, t in enumerate(trades)
            )
        )
        truth = await stores[0].db.query_one(
            "SELECT count(*)::int AS n, count(*) FILTER (WHERE pnl > 0)::int AS wins, "
            "sum(pnl) AS total FROM trades WHERE strategy_id = %s AND status = 'CLOSED'",
            (strategy.id,),
        )
        assert truth is not None
        for s in stores:  # every process, cache or not, sees the true numbers
            got = await s.strategies.get(strategy.id)
            assert (got.total_trades, got.winning_trades, got.total_pnl) == (
                truth["n"],
                truth["wins"],
                truth["total"],
            )


async def test_trade_from_order_fill_and_partial_fills(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(
        {
            "strategy_id": strategy.id,
            "symbol": "SOL-USD",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "4",
        }
    )
    with pytest.raises(Conflict, match="no fills"):
        await store.trades.open_from_order(order.id)
    await store.orders.record_fill(order.id, quantity="1", price="150", fee="0.1")
    await store.orders.record_fill(order.id, quantity="3", price="154", fee="0.3")
    trade = await store.trades.open_from_order(order.id, entry_tag="breakout")
    assert trade.entry_price == Decimal("153") and trade.quantity == Decimal(4)
    assert trade.fees == Decimal("0.4") and trade.entry_tag == "breakout"
    assert (await store.orders.get(order.id)).trade_id == trade.id
    with pytest.raises(Conflict, match="already opened trade"):
        await store.trades.open_from_order(order.id)

    partial = await store.trades.open(
        trade_data(strategy.id, quantity="3", filled_quantity="1", entry_price="100")
    )
    assert partial.status is TradeStatus.PARTIALLY_FILLED
    filled = await store.trades.add_fill(partial.id, quantity="2", price="103")
    assert filled.status is TradeStatus.OPEN and filled.entry_price == Decimal("102")
    with pytest.raises(Conflict, match="cannot add a fill"):
        await store.trades.add_fill(partial.id, quantity="1", price="1")


async def test_a_trade_opened_from_a_partial_order_follows_its_later_fills(
    store: TradeStore,
) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(
        {
            "strategy_id": strategy.id,
            "symbol": "SOL-USD",
            "side": "BUY",
            "type": "LIMIT",
            "price": "120",
            "quantity": "10",
        }
    )
    await store.orders.record_fill(order.id, quantity="4", price="100", fee="0.4")
    trade = await store.trades.open_from_order(order.id)
    assert (trade.quantity, trade.filled_quantity) == (Decimal(10), Decimal(4))
    assert trade.status is TradeStatus.PARTIALLY_FILLED and trade.entry_price == Decimal(100)
    await store.orders.record_fill(order.id, quantity="6", price="110", fee="0.6")
    trade = await store.trades.get(trade.id)
    assert trade.filled_quantity == Decimal(10) and trade.status is TradeStatus.OPEN
    assert trade.entry_price == Decimal(106) and trade.fees == Decimal(1)
    closed = await store.trades.close(trade.id, exit_price="116", exit_reason="tp")
    assert closed.pnl == Decimal(10) * (Decimal(116) - Decimal(106)) - Decimal(1)


async def test_concurrent_fills_of_a_linked_order_all_reach_the_trade(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(
        {
            "strategy_id": strategy.id,
            "symbol": "SOL-USD",
            "side": "SELL",
            "type": "MARKET",
            "quantity": "20",
        }
    )
    await store.orders.record_fill(order.id, quantity="1", price="100")
    trade = await store.trades.open_from_order(order.id)
    prices = [Decimal(100 + i) for i in range(1, 20)]
    await asyncio.gather(
        *(store.orders.record_fill(order.id, quantity="1", price=p, fee="0.01") for p in prices)
    )
    order_now = await store.orders.get(order.id)
    trade = await store.trades.get(trade.id)
    assert trade.filled_quantity == order_now.filled_quantity == Decimal(20)
    assert trade.entry_price == order_now.avg_fill_price == sum([Decimal(100), *prices]) / 20
    assert trade.fees == order_now.fees == Decimal("0.19")


async def test_open_trades_and_cancel(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    a = await store.trades.open(trade_data(strategy.id))
    b = await store.trades.open(trade_data(strategy.id))
    await store.trades.cancel(b.id)
    with pytest.raises(Conflict, match="already CANCELLED"):
        await store.trades.cancel(b.id)
    assert [t.id for t in await store.trades.open_trades(strategy.id)] == [a.id]
    assert a.id in {t.id for t in await store.trades.open_trades()}


async def test_history_keyset_pages_filters_and_total(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    base = datetime(2023, 1, 1, tzinfo=UTC)
    opened = []
    for i in range(23):
        symbol = "BTC-USD" if i % 2 else "ETH-USD"
        # two trades share each entry_time: the id breaks the tie
        opened.append(
            await store.trades.open(
                trade_data(strategy.id, symbol=symbol, entry_time=base + timedelta(hours=i // 2))
            )
        )
    filters = TradeFilters(strategy_id=strategy.id)
    seen, cursor = [], None
    while True:
        page = await store.trades.history(filters, page_size=5, cursor=cursor)
        assert page.total == 23
        seen.extend(page.trades)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 23 and len({t.id for t in seen}) == 23
    keys = [(t.entry_time, t.id) for t in seen]
    assert keys == sorted(keys, reverse=True)
    btc = await store.trades.history(
        TradeFilters(
            strategy_id=strategy.id,
            symbol="BTC-USD",
            date_from=base + timedelta(hours=3),
            date_to=base + timedelta(hours=8),
        )
    )
    assert btc.total == len(btc.trades) == 6
    closed = await store.trades.history(
        TradeFilters(strategy_id=strategy.id, status=TradeStatus.CLOSED)
    )
    assert closed.total == 0 and closed.trades == []


async def test_injection_through_filters_is_inert(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    await store.trades.open(trade_data(strategy.id))
    evil = "ETH-USD' OR '1'='1"
    page = await store.trades.history(TradeFilters(strategy_id=strategy.id, symbol=evil))
    assert page.total == 0  # bound as a value, matched literally
    with pytest.raises(ValidationError):
        await store.trades.history(TradeFilters(strategy_id="1; DROP TABLE trades"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cursor"):
        await store.trades.history(cursor="'; DELETE FROM trades; --")
    with pytest.raises(ValidationError, match="status: unknown value"):
        await store.trades.history(TradeFilters(status="OPEN'--"))  # type: ignore[arg-type]
    assert (
        await store.db.query_value(
            "SELECT count(*) FROM trades WHERE strategy_id = %s", (strategy.id,)
        )
        == 1
    )


async def test_deep_history_page_uses_the_keyset_index(store: TradeStore) -> None:
    async with store.db.transaction() as conn:
        await conn.execute("SET LOCAL enable_seqscan = off")
        cur = await conn.execute(
            "EXPLAIN SELECT * FROM trades WHERE strategy_id = %s "
            "AND (entry_time, id) < (%s, %s) ORDER BY entry_time DESC, id DESC LIMIT 51",
            (uuid.uuid4(), datetime.now(UTC), uuid.uuid4()),
        )
        plan = " ".join(r["QUERY PLAN"] for r in await cur.fetchall())
    assert "idx_trades_strategy_history" in plan and "Sort" not in plan
