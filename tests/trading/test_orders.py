"""Orders: idempotent creates, lifecycle, atomic fills, under real concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.conftest import open_stores
from tests.trading.helpers import new_strategy
from tradestore import Conflict, NotFound, TradeStore, ValidationError
from tradestore.trading.models import OrderStatus


def order_data(strategy_id: uuid.UUID, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "strategy_id": strategy_id,
        "symbol": "BTC-USD",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "1.5",
        "price": "50000.12345678",
    }
    data.update(overrides)
    return data


async def test_create_is_idempotent_per_client_order_id(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    first = await store.orders.create(order_data(strategy.id, client_order_id="c-1"))
    again = await store.orders.create(order_data(strategy.id, client_order_id="c-1"))
    assert again.id == first.id and first.remaining_quantity == Decimal("1.5")
    assert first.price == Decimal("50000.12345678")
    with pytest.raises(Conflict, match="already used for a different order"):
        await store.orders.create(order_data(strategy.id, client_order_id="c-1", quantity="2"))
    other = await new_strategy(store)  # the key is per strategy
    assert (await store.orders.create(order_data(other.id, client_order_id="c-1"))).id != first.id


async def test_concurrent_idempotent_creates_make_one_order(migrated_db_url: str) -> None:
    async with open_stores(migrated_db_url, 4) as stores:
        strategy = await new_strategy(stores[0])
        data = order_data(strategy.id, client_order_id=f"race-{uuid.uuid4().hex}")
        results = await asyncio.gather(*(stores[i % 4].orders.create(data) for i in range(20)))
        assert len({o.id for o in results}) == 1
        count = await stores[0].db.query_value(
            "SELECT count(*) FROM orders WHERE client_order_id = %s", (data["client_order_id"],)
        )
        events = await stores[0].db.query_value(
            "SELECT count(*) FROM event_outbox WHERE event_type = 'order.created' "
            "AND aggregate_id = %s",
            (str(results[0].id),),
        )
        assert count == 1 and events == 1


async def test_external_order_id_is_unique(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    ext = f"ex-{uuid.uuid4().hex}"
    created = await store.orders.create(order_data(strategy.id, external_order_id=ext))
    assert (await store.orders.get_by_external_id(ext)).id == created.id
    with pytest.raises(Conflict):
        await store.orders.create(order_data(strategy.id, external_order_id=ext))


async def test_fills_update_everything_in_one_statement(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(order_data(strategy.id, quantity="3"))
    part = await store.orders.record_fill(order.id, quantity="1", price="100", fee="0.1")
    assert part.status is OrderStatus.PARTIAL_FILLED and part.remaining_quantity == Decimal(2)
    assert part.submitted_at is not None and part.filled_at is None
    done = await store.orders.record_fill(order.id, quantity="2", price="103", fee="0.2")
    assert done.status is OrderStatus.FILLED and done.remaining_quantity == 0
    assert done.avg_fill_price == Decimal("102") and done.fees == Decimal("0.3")
    assert done.filled_at is not None
    with pytest.raises(Conflict, match="illegal transition FILLED -> PARTIAL_FILLED"):
        await store.orders.record_fill(order.id, quantity="1", price="1")


async def test_overfill_is_refused_and_bad_fills_named(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(order_data(strategy.id, quantity="1"))
    with pytest.raises(Conflict, match="would overfill"):
        await store.orders.record_fill(order.id, quantity="1.00000001", price="1")
    with pytest.raises(ValidationError, match="price") as caught:
        await store.orders.record_fill(order.id, quantity="1", price="-5")
    assert caught.value.field == "price"
    with pytest.raises(NotFound):
        await store.orders.record_fill(uuid.uuid4(), quantity="1", price="1")


async def test_concurrent_fills_lose_nothing_and_never_overfill(migrated_db_url: str) -> None:
    async with open_stores(migrated_db_url, 4) as stores:
        strategy = await new_strategy(stores[0])
        order = await stores[0].orders.create(order_data(strategy.id, quantity="10"))

        async def fill(i: int) -> bool:
            try:
                await stores[i % 4].orders.record_fill(
                    order.id, quantity="0.5", price=str(100 + i), fee="0.01"
                )
                return True
            except Conflict:
                return False

        outcomes = await asyncio.gather(*(fill(i) for i in range(30)))
        final = await stores[0].orders.get(order.id)
        assert sum(outcomes) == 20  # exactly the 20 fills that fit
        assert final.filled_quantity == Decimal(10) and final.status is OrderStatus.FILLED
        assert final.fees == Decimal("0.20") and final.remaining_quantity == 0
        accepted = [Decimal(100 + i) for i, ok in enumerate(outcomes) if ok]
        exact = sum(p * Decimal("0.5") for p in accepted) / Decimal(10)
        assert final.avg_fill_price == exact.quantize(Decimal("0.00000001"))


async def test_lifecycle_transitions_are_enforced(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(order_data(strategy.id))
    failed = await store.orders.record_failure(order.id, "exchange timeout")
    failed = await store.orders.record_failure(order.id, "exchange 503")
    assert failed.retry_count == 2 and failed.error_message == "exchange 503"
    assert order.id in {o.id for o in await store.orders.pending(strategy.id)}
    rejected = await store.orders.reject(order.id, "insufficient margin")
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.error_message == "insufficient margin"
    with pytest.raises(Conflict, match="illegal transition REJECTED -> CANCELLED"):
        await store.orders.cancel(order.id)
    second = await store.orders.create(order_data(strategy.id))
    await store.orders.record_fill(second.id, quantity="0.5", price="1")
    cancelled = await store.orders.cancel(second.id)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.cancelled_at is not None
    with pytest.raises(Conflict, match="illegal transition CANCELLED -> REJECTED"):
        await store.orders.reject(second.id, "late")


async def test_pending_query_uses_its_partial_index(store: TradeStore) -> None:
    # With sequential scans priced out (tiny test tables), the partial index must serve.
    async with store.db.transaction() as conn:
        await conn.execute("SET LOCAL enable_seqscan = off")
        cur = await conn.execute(
            "EXPLAIN SELECT * FROM orders WHERE status = 'PENDING' ORDER BY created_at ASC LIMIT 5"
        )
        text = " ".join(r["QUERY PLAN"] for r in await cur.fetchall())
    assert "idx_orders_pending" in text


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_json_documents_have_depth_and_size_limits(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    with pytest.raises(ValidationError, match="nested more than 32 levels") as deep:
        await store.orders.create(order_data(strategy.id, metadata=_nested(10_000)))
    assert len(str(deep.value)) < 200  # the value is named, not echoed
    with pytest.raises(ValidationError, match="bytes as JSON"):
        await store.orders.create(order_data(strategy.id, metadata={"blob": "x" * 2_000_000}))
    with pytest.raises(ValidationError, match="config: nested more than 32 levels"):
        await new_strategy(store, config=_nested(100))
    with pytest.raises(ValidationError, match="name") as long_name:
        await new_strategy(store, name="n" * 10_000)
    assert len(str(long_name.value)) < 300
    assert (await store.orders.create(order_data(strategy.id, metadata=_nested(30)))).metadata


async def test_a_row_too_deep_for_python_is_read_not_fatal(store: TradeStore) -> None:
    """Written by another client; every list that meets it still works."""
    strategy = await new_strategy(store)
    order = await store.orders.create(order_data(strategy.id))
    deep = "[" * 5000 + "]" * 5000
    await store.db.execute(
        "UPDATE orders SET metadata = jsonb_build_object('deep', %s::jsonb) WHERE id = %s",
        (deep, order.id),
    )
    pending = await store.orders.pending(strategy.id)
    assert [o.id for o in pending] == [order.id]
    assert "_unreadable" in pending[0].metadata


async def test_orders_take_the_symbols_market_data_takes(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    perpetual = await store.orders.create(order_data(strategy.id, symbol="BTC/USDT:USDT"))
    assert perpetual.symbol == "BTC/USDT:USDT"
    with pytest.raises(ValidationError, match="must be a market symbol"):
        await store.orders.create(order_data(strategy.id, symbol="btc usdt"))


async def test_concurrent_fill_and_open_of_one_order_open_exactly_one_trade(
    migrated_db_url: str,
) -> None:
    """Ten fills of one order race on four stores' connections: every fill counts, one
    trade is opened (one event), and it holds what the order filled at its price."""
    async with open_stores(migrated_db_url, 4) as stores:
        strategy = await new_strategy(stores[0])
        order = await stores[0].orders.create(order_data(strategy.id, quantity="10"))
        results = await asyncio.gather(
            *(
                stores[i % 4].orders.fill_and_open(order.id, quantity="1", price=str(100 + i))
                for i in range(10)
            )
        )
        trade_ids = {trade.id for _, trade in results}
        assert len(trade_ids) == 1
        final = await stores[0].orders.get(order.id)
        trade = await stores[0].trades.get(trade_ids.pop())
        assert final.status is OrderStatus.FILLED and final.trade_id == trade.id
        assert trade.filled_quantity == final.filled_quantity == Decimal(10)
        assert trade.entry_price == final.avg_fill_price == Decimal("104.5")
        opened = await stores[0].db.query_value(
            "SELECT count(*) FROM event_outbox WHERE event_type = 'trade.opened'"
            " AND aggregate_id = %s",
            (str(trade.id),),
        )
        assert opened == 1


async def test_fill_and_open_is_one_transaction_and_extends_on_later_fills(
    store: TradeStore,
) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(
        {
            "strategy_id": strategy.id,
            "symbol": "BTC-USD",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "2",
            "price": "100",
        }
    )
    filled, trade = await store.orders.fill_and_open(
        order.id, quantity="0.5", price="100", fee="0.1", stop_loss_price="90"
    )
    assert filled.trade_id == trade.id and filled.status is OrderStatus.PARTIAL_FILLED
    assert (trade.filled_quantity, trade.quantity, trade.fees) == (
        Decimal("0.5"),
        Decimal("2"),
        Decimal("0.1"),
    )
    assert trade.stop_loss_price == Decimal("90")
    again, extended = await store.orders.fill_and_open(order.id, quantity="1.5", price="102")
    assert again.status is OrderStatus.FILLED and again.trade_id == trade.id
    assert extended.id == trade.id and extended.filled_quantity == Decimal("2")
    assert extended.entry_price == Decimal("101.5")  # weighted: (0.5*100 + 1.5*102) / 2
    with pytest.raises(Conflict):  # a refused fill opens nothing and leaves nothing
        await store.orders.fill_and_open(order.id, quantity="1", price="100")
    linked = await store.db.query_value(
        "SELECT count(*) FROM trades WHERE strategy_id = %s", (strategy.id,)
    )
    assert linked == 1


async def _events_of(
    store: TradeStore, *aggregate_ids: uuid.UUID
) -> list[tuple[str, dict[str, object]]]:
    rows = await store.db.query(
        "SELECT event_type, payload FROM event_outbox WHERE aggregate_id = ANY(%s) ORDER BY id",
        ([str(i) for i in aggregate_ids],),
    )
    return [(r["event_type"], r["payload"]) for r in rows]


def _without_identity(payload: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in payload.items() if k not in ("id", "client_order_id")}


@pytest.mark.parametrize(
    ("order_type", "fill_quantity"), [("STOP_LIMIT", "2"), ("MARKET", "0.5"), ("LIMIT", "2")]
)
async def test_fill_and_open_in_one_statement_equals_a_fill_then_an_open(
    store: TradeStore, order_type: str, fill_quantity: str
) -> None:
    """fill_and_open's one statement records the same order, trade and events (in the
    same order) as record_fill then open_from_order; a STOP_LIMIT order opens a LIMIT
    trade, a partial fill a PARTIALLY_FILLED one."""
    strategy = await new_strategy(store)
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    spec = order_data(strategy.id, type=order_type, quantity="2", stop_price="99")
    notes = {"stop_loss_price": "90", "entry_tag": "t", "metadata": {"k": [1]}, "notes": "n"}
    one, two = await store.orders.create(spec), await store.orders.create(spec)
    filled, opened = await store.orders.fill_and_open(
        one.id, quantity=fill_quantity, price="100.5", fee="0.25", at=at, **notes
    )
    await store.orders.record_fill(two.id, quantity=fill_quantity, price="100.5", fee="0.25", at=at)
    reference = await store.trades.open_from_order(two.id, **notes)
    assert filled == await store.orders.get(one.id) and opened == await store.trades.get(opened.id)
    assert filled.trade_id == opened.id
    expected_type = "LIMIT" if order_type == "STOP_LIMIT" else order_type
    assert opened.type.value == expected_type and opened.entry_time == at
    differ = {"id", "created_at", "updated_at"}
    assert opened.model_dump(exclude=differ) == reference.model_dump(exclude=differ)
    linked = await store.orders.get(two.id)
    assert filled.model_dump(exclude=differ | {"trade_id"}) == linked.model_dump(
        exclude=differ | {"trade_id"}
    )
    ours = await _events_of(store, one.id, opened.id)
    theirs = await _events_of(store, two.id, reference.id)
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    assert [t for t, _ in ours][1:] == [
        "order.filled" if fill_quantity == "2" else "order.partially_filled",
        "trade.opened",
    ]
    assert [_without_identity(p) for _, p in ours] == [_without_identity(p) for _, p in theirs]


async def test_fill_and_open_refuses_bad_trade_fields_before_any_change(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(order_data(strategy.id))
    with pytest.raises(ValidationError, match="stop_loss_price"):
        await store.orders.fill_and_open(order.id, quantity="1", price="10", stop_loss_price="-1")
    with pytest.raises(ValidationError, match="colour"):
        await store.orders.fill_and_open(order.id, quantity="1", price="10", colour="red")
    unchanged = await store.orders.get(order.id)
    assert unchanged.filled_quantity == 0 and unchanged.trade_id is None
    with pytest.raises(NotFound):
        await store.orders.fill_and_open(uuid.uuid4(), quantity="1", price="10")
    # a trade field beyond the annotations (its entry time) takes the two-statement way
    at = datetime(2026, 1, 2, tzinfo=UTC)
    _, trade = await store.orders.fill_and_open(order.id, quantity="1", price="10", entry_time=at)
    assert trade.entry_time == at


async def test_fill_and_open_of_an_order_whose_trade_closed_is_a_conflict(
    store: TradeStore,
) -> None:
    strategy = await new_strategy(store)
    order = await store.orders.create(order_data(strategy.id, quantity="2"))
    _, trade = await store.orders.fill_and_open(order.id, quantity="1", price="100")
    await store.trades.close(trade.id, exit_price="101", exit_reason="SIGNAL")
    with pytest.raises(Conflict, match="no longer open"):
        await store.orders.fill_and_open(order.id, quantity="1", price="100")
    assert (await store.orders.get(order.id)).filled_quantity == Decimal(1)  # rolled back
