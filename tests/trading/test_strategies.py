"""Strategies against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.trading.helpers import new_strategy
from tradestore import Conflict, NotFound, TradeStore, ValidationError


async def test_create_get_update_delete(store: TradeStore) -> None:
    created = await new_strategy(store, config={"fast": 12, "levels": [0.5, 1.5]})
    got = await store.strategies.get(created.id)
    assert got == created and got.config == {"fast": 12, "levels": [0.5, 1.5]}
    updated = await store.strategies.update(created.id, version="2.0", symbols=["ETH-USD"])
    assert updated.version == "2.0" and updated.symbols == ["ETH-USD"]
    assert updated.updated_at > created.updated_at
    assert (await store.strategies.get(created.id)).version == "2.0"  # cache invalidated
    assert await store.strategies.delete(created.id) is True
    with pytest.raises(NotFound):
        await store.strategies.get(created.id)
    assert await store.strategies.delete(created.id) is False


async def test_duplicate_name_is_a_conflict(store: TradeStore) -> None:
    first = await new_strategy(store)
    with pytest.raises(Conflict, match=f"'{first.name}' already exists"):
        await new_strategy(store, name=first.name)


async def test_update_rejects_unknown_fields_before_any_sql(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    for field in ("total_pnl", "name = 'x' --", "id", "is_active; DROP TABLE trades"):
        with pytest.raises(ValidationError, match="not a known field") as caught:
            await store.strategies.update(strategy.id, **{field: 1})
        assert caught.value.field == field
    assert await store.db.query_value("SELECT to_regclass('trades') IS NOT NULL")
    with pytest.raises(ValidationError, match="nothing to update"):
        await store.strategies.update(strategy.id)


async def test_active_list_is_cached_and_invalidated(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    assert strategy.id not in {s.id for s in await store.strategies.list_active()}
    await store.strategies.activate(strategy.id)
    assert strategy.id in {s.id for s in await store.strategies.list_active()}
    await store.strategies.deactivate(strategy.id)
    assert strategy.id not in {s.id for s in await store.strategies.list_active()}
    live = await store.strategies.set_paper_trading(strategy.id, False)
    assert live.is_paper_trading is False


async def test_performance_summary_with_time_zones(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    base = datetime(2024, 5, 1, 12, tzinfo=UTC)
    for i, exit_price in enumerate(["110", "95", "120"]):
        trade = await store.trades.open(
            {
                "strategy_id": strategy.id,
                "symbol": "BTC-USD",
                "side": "BUY",
                "entry_price": "100",
                "quantity": "1",
                "entry_time": base + timedelta(days=i),
            }
        )
        await store.trades.close(
            trade.id,
            exit_price=exit_price,
            exit_reason="SIGNAL",
            exit_time=base + timedelta(days=i, hours=2),
        )
    perf = await store.strategies.performance(strategy.id)
    assert perf.total_trades == 3 and perf.winning_trades == 2
    assert perf.total_pnl == Decimal("25") and perf.best_trade == Decimal("20")
    assert perf.avg_duration_minutes == Decimal("120")
    # 2024-05-02 12:00 UTC is 2024-05-02 21:00 in UTC+9: the same instant, included
    tokyo = timezone(timedelta(hours=9))
    ranged = await store.strategies.performance(
        strategy.id, date_from=datetime(2024, 5, 2, 21, tzinfo=tokyo)
    )
    assert ranged.total_trades == 2 and ranged.total_pnl == Decimal("15")
    with pytest.raises(ValidationError, match="time zone"):
        await store.strategies.performance(strategy.id, date_from=datetime(2024, 5, 1))


async def test_update_performance_metrics(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    updated = await store.strategies.update_performance_metrics(
        strategy.id,
        total_trades=10,
        winning_trades=6,
        total_pnl=Decimal("12.5"),
        max_drawdown=Decimal("0.1234"),
    )
    assert updated.total_pnl == Decimal("12.5") and updated.max_drawdown == Decimal("0.1234")
    with pytest.raises(ValidationError, match="winning_trades"):
        await store.strategies.update_performance_metrics(
            strategy.id, total_trades=1, winning_trades=2, total_pnl=0, max_drawdown=0
        )
