"""Orders: idempotent create, an enforced lifecycle, and atomic fills.

Lifecycle: PENDING -> PARTIAL_FILLED -> FILLED, and PENDING/PARTIAL_FILLED -> CANCELLED,
PENDING -> REJECTED. Every state change is one conditional UPDATE: it applies only from
an allowed state, so concurrent writers cannot both win, and a fill can never take
filled_quantity past quantity (also guarded by a CHECK constraint).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from tradestore.db.database import Connection, Database, pipelined_transaction
from tradestore.errors import Conflict, NotFound
from tradestore.frames import Records
from tradestore.realtime.events import EventType, event_literal, with_event
from tradestore.times import optional_aware
from tradestore.trading.models import (
    NewOrder,
    NonNegativeMoney,
    Order,
    OrderStatus,
    PositiveMoney,
    Trade,
    TradeAnnotations,
    as_uuid,
    parse_enum,
    parse_input,
    parse_money,
)
from tradestore.trading.trades import (
    OPEN_FROM_FILLED_ORDER,
    TRADE_PAYLOAD,
    annotation_params,
    fetch_trade,
    follow_entry_orders,
    send_trade_for_order,
    to_trade,
)

if TYPE_CHECKING:
    from tradestore.db.replicas import ReadRouter

OPEN_STATES = (OrderStatus.PENDING, OrderStatus.PARTIAL_FILLED)

# The payload of an order's events, over the changed row (see with_event).
ORDER_PAYLOAD = """jsonb_build_object(
    'id', changed.id, 'strategy_id', changed.strategy_id, 'symbol', changed.symbol,
    'side', changed.side, 'status', changed.status, 'quantity', changed.quantity::text,
    'filled_quantity', changed.filled_quantity::text,
    'avg_fill_price', changed.avg_fill_price::text, 'client_order_id', changed.client_order_id)"""
FILL_PAYLOAD = (
    ORDER_PAYLOAD
    + " || jsonb_build_object('fill_quantity', %(qty)s::text, 'fill_price', %(price)s::text)"
)
FILL_EVENT = (
    f"CASE WHEN changed.status = 'FILLED' THEN {event_literal(EventType.ORDER_FILLED)}"
    f" ELSE {event_literal(EventType.ORDER_PARTIALLY_FILLED)} END"
)


INSERT_ORDER = """
INSERT INTO orders (strategy_id, trade_id, external_order_id, client_order_id, symbol, side,
                    type, quantity, price, stop_price, remaining_quantity, time_in_force,
                    reduce_only, metadata)
VALUES (%(strategy_id)s, %(trade_id)s, %(external_order_id)s, %(client_order_id)s,
        %(symbol)s, %(side)s, %(type)s, %(quantity)s, %(price)s, %(stop_price)s,
        %(quantity)s, %(time_in_force)s, %(reduce_only)s, %(metadata)s)
ON CONFLICT (strategy_id, client_order_id) WHERE client_order_id IS NOT NULL DO NOTHING
RETURNING *
"""
CREATE_ORDER = with_event(INSERT_ORDER, event_literal(EventType.ORDER_CREATED), ORDER_PAYLOAD)
SELECT_BY_CLIENT_ID = "SELECT * FROM orders WHERE strategy_id = %s AND client_order_id = %s"
SELECT_BY_ID = "SELECT * FROM orders WHERE id = %s"
SELECT_BY_EXTERNAL_ID = "SELECT * FROM orders WHERE external_order_id = %s"
SELECT_PENDING = """
SELECT * FROM orders WHERE status = 'PENDING' ORDER BY created_at ASC LIMIT %s
"""
SELECT_PENDING_OF_STRATEGY = """
SELECT * FROM orders WHERE status = 'PENDING' AND strategy_id = %s
 ORDER BY created_at ASC LIMIT %s
"""

# One statement: every SET expression sees the row as it was before the fill.
FILL_SET = """
    filled_quantity = filled_quantity + %(qty)s,
    remaining_quantity = quantity - filled_quantity - %(qty)s,
    filled_notional = filled_notional + %(price)s * %(qty)s,
    avg_fill_price = round(
        (filled_notional + %(price)s * %(qty)s) / (filled_quantity + %(qty)s), 8),
    fees = fees + %(fee)s,
    status = CASE WHEN filled_quantity + %(qty)s = quantity THEN 'FILLED'
                  ELSE 'PARTIAL_FILLED' END,
    submitted_at = coalesce(submitted_at, %(at)s),
    filled_at = CASE WHEN filled_quantity + %(qty)s = quantity THEN %(at)s ELSE filled_at END"""
FILLABLE = """id = %(id)s
   AND status IN ('PENDING', 'PARTIAL_FILLED')
   AND filled_quantity + %(qty)s <= quantity"""
RECORD_FILL = f"UPDATE orders SET {FILL_SET}\n WHERE {FILLABLE}\nRETURNING *"  # noqa: S608
FILL_ORDER = with_event(RECORD_FILL, FILL_EVENT, FILL_PAYLOAD)
# An order's first fill opens its trade in one statement: the fill (linking the order to
# the new trade's id), the trade, and their events in that order; the row is the order's
# columns and the trade's, the latter prefixed with TRADE_PREFIX. A row of neither when
# the fill is refused or the order has a trade already.
TRADE_PREFIX = "trade__"
_TRADE_COLUMNS = ", ".join(f"opened.{name} AS {TRADE_PREFIX}{name}" for name in Trade.model_fields)
FILL_AND_OPEN = f"""
WITH changed AS (
    UPDATE orders SET {FILL_SET}, trade_id = %(trade_id)s
     WHERE {FILLABLE} AND trade_id IS NULL
    RETURNING *),
opened AS ({OPEN_FROM_FILLED_ORDER}),
outbox AS (
    INSERT INTO event_outbox (event_type, aggregate_id, payload)
    SELECT event_type, aggregate_id, payload
      FROM (SELECT 1 AS n, {FILL_EVENT} AS event_type, changed.id::text AS aggregate_id,
                   {FILL_PAYLOAD} AS payload
              FROM changed
            UNION ALL
            SELECT 2, {event_literal(EventType.TRADE_OPENED)}, changed.id::text,
                   {TRADE_PAYLOAD}
              FROM opened AS changed) AS events
     ORDER BY n)
SELECT changed.*, {_TRADE_COLUMNS}
  FROM changed, opened
"""  # noqa: S608 (every part a module constant; values are bound)
MARK_SUBMITTED = """
UPDATE orders SET submitted_at = coalesce(%(at)s, now()),
       external_order_id = coalesce(%(external_order_id)s, external_order_id)
 WHERE id = %(id)s AND status = 'PENDING'
RETURNING *
"""
CANCEL = """
UPDATE orders SET status = 'CANCELLED', cancelled_at = now()
 WHERE id = %(id)s AND status IN ('PENDING', 'PARTIAL_FILLED')
RETURNING *
"""
REJECT = """
UPDATE orders SET status = 'REJECTED', error_message = %(error)s
 WHERE id = %(id)s AND status = 'PENDING'
RETURNING *
"""
CANCEL_ORDER = with_event(CANCEL, event_literal(EventType.ORDER_CANCELLED), ORDER_PAYLOAD)
REJECT_ORDER = with_event(REJECT, event_literal(EventType.ORDER_REJECTED), ORDER_PAYLOAD)
RECORD_FAILURE = """
UPDATE orders SET retry_count = retry_count + 1, error_message = %(error)s
 WHERE id = %(id)s AND status IN ('PENDING', 'PARTIAL_FILLED')
RETURNING *
"""


def to_order(row: dict[str, Any]) -> Order:
    return Order.model_validate(row)


ORDERS_WHERE = """
 WHERE (%(s)s::uuid IS NULL OR strategy_id = %(s)s)
   AND (%(st)s::text IS NULL OR status = %(st)s)
   AND (%(from)s::timestamptz IS NULL OR created_at >= %(from)s)
   AND (%(to)s::timestamptz IS NULL OR created_at < %(to)s)
"""
LIST_ORDERS = f"SELECT * FROM orders {ORDERS_WHERE} ORDER BY created_at DESC LIMIT %(n)s"  # noqa: S608
FRAME_ORDERS = f"SELECT * FROM orders {ORDERS_WHERE} ORDER BY created_at, id"  # noqa: S608


class OrderRepository:
    def __init__(self, db: Database, *, reads: Database | ReadRouter | None = None) -> None:
        self.db = db
        self.reads = reads or db  # lists and frames tolerate staleness: a replica

    async def create(self, data: NewOrder | dict[str, Any]) -> Order:
        """Create an order. With a client_order_id, a retry returns the first order;
        a retry whose details differ from the first is a Conflict."""
        new = parse_input(NewOrder, data)
        params = new.model_dump()
        params.update(
            side=new.side.value,
            type=new.type.value,
            time_in_force=new.time_in_force.value,
            metadata=Jsonb(new.metadata),
        )
        row = await self.db.query_one(CREATE_ORDER, params)  # the order and its event
        if row is not None:
            return to_order(row)
        existing = await self.db.query_one(
            SELECT_BY_CLIENT_ID, (new.strategy_id, new.client_order_id)
        )
        assert existing is not None  # DO NOTHING only skips when the key exists
        order = to_order(existing)
        _same_request_or_conflict(order, new)
        return order

    async def get(self, order_id: UUID) -> Order:
        row = await self.db.query_one(SELECT_BY_ID, (as_uuid(order_id),))
        if row is None:
            raise NotFound(f"no order with id {order_id}")
        return to_order(row)

    async def get_by_external_id(self, external_order_id: str) -> Order:
        row = await self.db.query_one(SELECT_BY_EXTERNAL_ID, (external_order_id,))
        if row is None:
            raise NotFound(f"no order with external_order_id {external_order_id!r}")
        return to_order(row)

    async def pending(self, strategy_id: UUID | None = None, *, limit: int = 1000) -> list[Order]:
        """PENDING orders, oldest first (idx_orders_pending)."""
        if strategy_id is None:
            rows = await self.db.query(SELECT_PENDING, (limit,))
        else:
            rows = await self.db.query(SELECT_PENDING_OF_STRATEGY, (as_uuid(strategy_id), limit))
        return [to_order(r) for r in rows]

    async def list(
        self,
        *,
        strategy_id: UUID | None = None,
        status: OrderStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Order]:
        """Orders newest first, created in [since, until) when given (from a replica when
        there is one within the lag bound: an order made a moment ago may not be there
        yet; `get` reads the primary)."""
        params = _filters(strategy_id, status, since, until)
        rows = await self.reads.query(LIST_ORDERS, {**params, "n": limit})
        return [to_order(r) for r in rows]

    async def frame(
        self,
        *,
        strategy_id: UUID | None = None,
        status: OrderStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Records:
        """Every matching order created in [since, until), oldest first, as columns
        (see tradestore.frames)."""
        return await self.reads.records(FRAME_ORDERS, _filters(strategy_id, status, since, until))

    async def record_fill(
        self,
        order_id: UUID,
        *,
        quantity: Decimal | str | int,
        price: Decimal | str | int,
        fee: Decimal | str | int = Decimal(0),
        at: datetime | None = None,
    ) -> Order:
        """Add one fill: quantities, weighted average price, fees and timestamps in one
        atomic statement. Concurrent fills all count; none may overfill. A trade opened
        from this order follows it (filled quantity, entry price, fees) in the same
        transaction."""
        fill = _parse_fill(quantity, price, fee, at)
        fill["id"] = as_uuid(order_id)
        async with self.db.transaction(pipeline=True) as conn:
            order = await self._apply_fill(conn, fill)
            if order.trade_id is not None:
                await follow_entry_orders(conn, order.trade_id)
        return order

    async def fill_and_open(
        self,
        order_id: UUID,
        *,
        quantity: Decimal | str | int,
        price: Decimal | str | int,
        fee: Decimal | str | int = Decimal(0),
        at: datetime | None = None,
        **trade: Any,
    ) -> tuple[Order, Trade]:
        """Record a fill and open the order's trade (or extend it, when the order has
        one already) in one transaction: one commit instead of two for the usual step of
        a bot. `trade` takes the fields open_from_order takes (stop_loss_price, ...).
        A first fill with only TradeAnnotations in `trade` is one statement. A fill of an
        order whose trade is closed or cancelled is a Conflict and records nothing
        (record_fill records it without the trade)."""
        fill = _parse_fill(quantity, price, fee, at)
        fill["id"] = as_uuid(order_id)
        if trade.keys() <= TradeAnnotations.model_fields.keys():
            filled_and_opened = await self._fill_and_open_at_once(fill, trade)
            if filled_and_opened is not None:
                return filled_and_opened
        # the order has a trade to extend, the fill is refused, or `trade` sets facts
        async with self.db.connection() as conn:
            async with pipelined_transaction(conn):
                order = await self._apply_fill(conn, fill)
                if order.trade_id is not None:
                    followed = await follow_entry_orders(conn, order.trade_id)
                    if followed is None:
                        raise Conflict(
                            f"order {order.id}: its trade {order.trade_id} is no longer "
                            "open, so the fill cannot extend it (record_fill records it)"
                        )
                    return order, followed
                sent = await send_trade_for_order(conn, order, **trade)
            opened = await fetch_trade(sent)  # the INSERT went with the COMMIT
        return order.model_copy(update={"trade_id": opened.id}), opened

    async def _fill_and_open_at_once(
        self, fill: dict[str, Any], trade: dict[str, Any]
    ) -> tuple[Order, Trade] | None:
        """The usual first fill: one statement, one round trip (FILL_AND_OPEN). None
        when it does not apply (the order has a trade, or the fill is refused)."""
        annotations = parse_input(TradeAnnotations, trade)
        params = {**fill, **annotation_params(annotations), "trade_id": uuid4()}
        row = await self.db.query_one(FILL_AND_OPEN, params)
        if row is None:
            return None
        opened = {name: row[TRADE_PREFIX + name] for name in Trade.model_fields}
        return to_order(row), to_trade(opened)

    async def _apply_fill(self, conn: Connection, fill: dict[str, Any]) -> Order:
        """The fill and its event, one statement; the order's row stays locked."""
        cur = await conn.execute(FILL_ORDER, fill)
        row = await cur.fetchone()
        if row is None:
            await self._explain_refused_fill(conn, fill)
        assert row is not None
        return to_order(row)

    async def mark_submitted(
        self, order_id: UUID, *, external_order_id: str | None = None, at: datetime | None = None
    ) -> Order:
        params = {"id": as_uuid(order_id), "external_order_id": external_order_id, "at": at}
        return await self._transition(MARK_SUBMITTED, params, "PENDING (submitted)")

    async def cancel(self, order_id: UUID) -> Order:
        return await self._transition(
            CANCEL_ORDER, {"id": as_uuid(order_id)}, OrderStatus.CANCELLED
        )

    async def reject(self, order_id: UUID, error_message: str) -> Order:
        params = {"id": as_uuid(order_id), "error": error_message}
        return await self._transition(REJECT_ORDER, params, OrderStatus.REJECTED)

    async def record_failure(self, order_id: UUID, error_message: str) -> Order:
        """A failed submission attempt: retry_count + 1 and the error kept; state unchanged."""
        params = {"id": as_uuid(order_id), "error": error_message}
        return await self._transition(RECORD_FAILURE, params, "retry")

    async def _transition(
        self, query: str, params: dict[str, Any], target: OrderStatus | str
    ) -> Order:
        """One conditional statement (with its event, if any); when it changes nothing,
        the order's current status says why."""
        row = await self.db.query_one(query, params)
        if row is None:
            current = await _current_status(self.db, params["id"])
            raise Conflict(f"order {params['id']}: illegal transition {current} -> {target}")
        return to_order(row)

    async def _explain_refused_fill(self, conn: Connection, fill: dict[str, Any]) -> None:
        cur = await conn.execute(SELECT_BY_ID, (fill["id"],))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no order with id {fill['id']}")
        order = to_order(row)
        if order.status not in OPEN_STATES:
            raise Conflict(
                f"order {order.id}: illegal transition {order.status.value} -> "
                f"{OrderStatus.PARTIAL_FILLED.value} (cannot fill a {order.status.value} order)"
            )
        raise Conflict(
            f"order {order.id}: a fill of {fill['qty']} would overfill it "
            f"(filled {order.filled_quantity} of {order.quantity})"
        )


def _filters(
    strategy_id: UUID | None,
    status: OrderStatus | str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    """The parameters of ORDERS_WHERE."""
    return {
        "s": strategy_id and as_uuid(strategy_id),
        "st": _status(status),
        "from": optional_aware("since", since),
        "to": optional_aware("until", until),
    }


def _parse_fill(
    quantity: object, price: object, fee: object, at: datetime | None
) -> dict[str, Any]:
    optional_aware("at", at)
    return {
        "qty": parse_money("quantity", quantity, PositiveMoney),
        "price": parse_money("price", price, PositiveMoney),
        "fee": parse_money("fee", fee, NonNegativeMoney),
        "at": at or datetime.now().astimezone(),
    }


def _same_request_or_conflict(order: Order, new: NewOrder) -> None:
    mismatched = [
        name
        for name in ("symbol", "side", "type", "quantity", "price", "stop_price")
        if getattr(order, name) != getattr(new, name)
    ]
    if mismatched:
        raise Conflict(
            f"client_order_id {new.client_order_id!r} was already used for a different order "
            f"({', '.join(mismatched)} differ)",
            constraint="uq_orders_strategy_client_order_id",
        )


def _status(value: OrderStatus | str | None) -> str | None:
    if value is None or value == "all":
        return None
    return parse_enum(OrderStatus, value, field="status").value


async def _current_status(db: Database, order_id: UUID) -> str:
    row = await db.query_one("SELECT status FROM orders WHERE id = %s", (order_id,))
    if row is None:
        raise NotFound(f"no order with id {order_id}")
    return str(row["status"])
