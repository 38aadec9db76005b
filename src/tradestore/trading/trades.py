"""Trades: open (directly or from an order), partial fills, close exactly once, history.

Closing reads the trade, computes P&L in Decimal, and closes it only if it is still open
with the P&L's inputs as read, adding the result to its strategy's statistics in the
same statement: of many concurrent closers exactly one succeeds, the rest get a Conflict,
a fill that lands in between makes the close compute again, and the strategy's
total_trades / winning_trades / total_pnl always equal what the trades table says.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg import AsyncCursor, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from tradestore.cache.two_tier import TwoTierCache
from tradestore.db.database import Connection, Database
from tradestore.errors import Conflict, NotFound, ValidationError
from tradestore.frames import Records
from tradestore.realtime.events import EventType, event_literal, with_event
from tradestore.times import optional_aware, require_aware
from tradestore.trading.models import (
    NewTrade,
    NonNegativeMoney,
    Order,
    OrderStatus,
    PositiveMoney,
    Trade,
    TradeAnnotations,
    TradeStatus,
    as_uuid,
    check_json,
    parse_enum,
    parse_input,
    parse_money,
)
from tradestore.trading.strategies import ACTIVE_KEY
from tradestore.trading.strategies import cache_key as strategy_key

if TYPE_CHECKING:
    from tradestore.db.replicas import ReadRouter

# The payload of a trade's events, over the changed row (see with_event).
TRADE_PAYLOAD = """jsonb_build_object(
    'id', changed.id, 'strategy_id', changed.strategy_id, 'symbol', changed.symbol,
    'side', changed.side, 'status', changed.status, 'entry_price', changed.entry_price::text,
    'quantity', changed.filled_quantity::text, 'exit_price', changed.exit_price::text,
    'pnl', changed.pnl::text, 'pnl_percent', changed.pnl_percent::text)"""


INSERT_TRADE = """
INSERT INTO trades (strategy_id, external_order_id, symbol, side, type, entry_price, quantity,
                    filled_quantity, entry_time, fees, status, entry_signal, entry_tag,
                    stop_loss_price, take_profit_price, metadata, notes)
VALUES (%(strategy_id)s, %(external_order_id)s, %(symbol)s, %(side)s, %(type)s,
        %(entry_price)s, %(quantity)s, %(filled_quantity)s, coalesce(%(entry_time)s, now()),
        %(fees)s, %(status)s, %(entry_signal)s, %(entry_tag)s, %(stop_loss_price)s,
        %(take_profit_price)s, %(metadata)s, %(notes)s)
RETURNING *
"""
OPEN_TRADE = with_event(INSERT_TRADE, event_literal(EventType.TRADE_OPENED), TRADE_PAYLOAD)
# opened from an order: the order is linked to the trade in the same statement
OPEN_TRADE_FOR_ORDER = with_event(
    INSERT_TRADE,
    event_literal(EventType.TRADE_OPENED),
    TRADE_PAYLOAD,
    also=""",
link AS (UPDATE orders SET trade_id = changed.id FROM changed WHERE orders.id = %(order_id)s)""",
)
# An order's type as its trade's where they differ: a trade has no STOP_LIMIT (it entered
# at a limit). Read by _trade_type and, as SQL, by OPEN_FROM_FILLED_ORDER.
TRADE_TYPE_OF_ORDER_TYPE = {"STOP_LIMIT": "LIMIT"}
_TRADE_TYPE_SQL = (
    "CASE changed.type "
    + " ".join(
        f"WHEN '{order}' THEN '{trade}'" for order, trade in TRADE_TYPE_OF_ORDER_TYPE.items()
    )
    + " ELSE changed.type END"
)
# A trade opened by its order's first fill, in the fill's statement (see
# orders.FILL_AND_OPEN): its facts from the filled order's row `changed` (as
# send_trade_for_order takes them), its annotations bound.
OPEN_FROM_FILLED_ORDER = f"""
INSERT INTO trades (id, strategy_id, external_order_id, symbol, side, type, entry_price,
                    quantity, filled_quantity, entry_time, fees, status, entry_signal,
                    entry_tag, stop_loss_price, take_profit_price, metadata, notes)
SELECT changed.trade_id, changed.strategy_id, changed.external_order_id, changed.symbol,
       changed.side, {_TRADE_TYPE_SQL},
       changed.avg_fill_price, changed.quantity, changed.filled_quantity,
       coalesce(changed.filled_at, changed.submitted_at, now()), changed.fees,
       CASE WHEN changed.filled_quantity = changed.quantity THEN 'OPEN'
            ELSE 'PARTIALLY_FILLED' END,
       %(entry_signal)s, %(entry_tag)s, %(stop_loss_price)s, %(take_profit_price)s,
       %(metadata)s, %(notes)s
  FROM changed
RETURNING *
"""  # noqa: S608 (module constants; values are bound)
SELECT_BY_ID = "SELECT * FROM trades WHERE id = %s"
LOCK_ORDER = "SELECT * FROM orders WHERE id = %s FOR UPDATE"
# Closes an open trade with something filled, its P&L computed from the row as it is
# (trade_close_pnl, migration 0026): of concurrent closers one matches, and a fill that
# committed first is in the P&L.
CLOSE_TRADE = """
UPDATE trades SET exit_price = %(exit_price)s, exit_time = coalesce(%(exit_time)s, now()),
       (pnl, pnl_percent) = (SELECT p.pnl, p.pnl_percent
                               FROM trade_close_pnl(side, entry_price, %(exit_price)s,
                                                    filled_quantity, fees + %(exit_fee)s) AS p),
       fees = fees + %(exit_fee)s, status = 'CLOSED',
       exit_reason = %(exit_reason)s, exit_signal = %(exit_signal)s, exit_tag = %(exit_tag)s,
       updated_at = now()
 WHERE id = %(id)s AND status IN ('OPEN', 'PARTIALLY_FILLED') AND filled_quantity > 0
RETURNING *
"""
# The close, its event and the strategy's statistics in one statement (one transaction,
# no lock held across round trips). The strategy's row is locked last: every close of
# the strategy queues on it.
CLOSE_AND_COUNT = with_event(
    CLOSE_TRADE,
    event_literal(EventType.TRADE_CLOSED),
    TRADE_PAYLOAD,
    also=""",
stats AS (UPDATE strategies s SET total_trades = s.total_trades + 1,
                 winning_trades = s.winning_trades + CASE WHEN changed.pnl > 0 THEN 1 ELSE 0 END,
                 total_pnl = s.total_pnl + changed.pnl, updated_at = now()
            FROM changed WHERE s.id = changed.strategy_id)""",
)
# A partial fill of an open trade: weighted entry price, one conditional statement.
ADD_FILL = """
UPDATE trades SET
    entry_price = round((entry_price * filled_quantity + %(price)s * %(qty)s)
                        / (filled_quantity + %(qty)s), 8),
    filled_quantity = filled_quantity + %(qty)s,
    fees = fees + %(fee)s,
    status = CASE WHEN filled_quantity + %(qty)s = quantity THEN 'OPEN'
                  ELSE 'PARTIALLY_FILLED' END,
    updated_at = now()
 WHERE id = %(id)s AND status IN ('OPEN', 'PARTIALLY_FILLED')
   AND filled_quantity + %(qty)s <= quantity
RETURNING *
"""
# A trade follows its entry orders (those linked to it on its side), as freqtrade
# recomputes a trade from its orders: filled quantity, weighted entry price and fees.
FOLLOW_ENTRY_ORDERS = """
UPDATE trades t SET
    filled_quantity = agg.filled,
    quantity = greatest(t.quantity, agg.filled),
    entry_price = agg.price,
    fees = agg.fees,
    status = CASE WHEN agg.filled >= t.quantity THEN 'OPEN' ELSE 'PARTIALLY_FILLED' END,
    updated_at = now()
  FROM (SELECT sum(o.filled_quantity) AS filled,
               round(sum(o.filled_notional) / sum(o.filled_quantity), 8) AS price,
               sum(o.fees) AS fees
          FROM orders o JOIN trades tr ON tr.id = o.trade_id AND o.side = tr.side
         WHERE o.trade_id = %(trade_id)s AND o.filled_quantity > 0) agg
 WHERE t.id = %(trade_id)s AND t.status IN ('OPEN', 'PARTIALLY_FILLED') AND agg.filled > 0
RETURNING t.*
"""
FOLLOW_AND_EVENT = with_event(
    FOLLOW_ENTRY_ORDERS, event_literal(EventType.TRADE_FILLED), TRADE_PAYLOAD
)
CANCEL_TRADE = """
UPDATE trades SET status = 'CANCELLED', updated_at = now()
 WHERE id = %s AND status IN ('OPEN', 'PARTIALLY_FILLED')
RETURNING *
"""
SELECT_OPEN = """
SELECT * FROM trades WHERE status IN ('OPEN', 'PARTIALLY_FILLED')
 ORDER BY entry_time DESC
"""
SELECT_OPEN_OF_STRATEGY = """
SELECT * FROM trades WHERE strategy_id = %s AND status IN ('OPEN', 'PARTIALLY_FILLED')
 ORDER BY entry_time DESC
"""


def to_trade(row: dict[str, Any]) -> Trade:
    return Trade.model_validate(row)


@dataclass(frozen=True)
class TradeFilters:
    strategy_id: UUID | None = None
    symbol: str | None = None
    status: TradeStatus | None = None
    date_from: datetime | None = None  # entry_time >= date_from
    date_to: datetime | None = None  # entry_time <= date_to


@dataclass(frozen=True)
class TradePage:
    trades: list[Trade]
    next_cursor: str | None  # pass to history(cursor=...) for the next page
    total: int | None


class TradeRepository:
    def __init__(
        self, db: Database, cache: TwoTierCache, *, reads: Database | ReadRouter | None = None
    ) -> None:
        self.db = db
        self.cache = cache
        self.reads = reads or db  # history and frames tolerate staleness: a replica

    # --- open -------------------------------------------------------------------------------
    async def open(self, data: NewTrade | dict[str, Any]) -> Trade:
        new = parse_input(NewTrade, data)
        async with self.db.transaction(pipeline=True) as conn:
            trade = await _insert(conn, new)
        return trade

    async def open_from_order(self, order_id: UUID, **extra: Any) -> Trade:
        """Open a trade for what an order has filled so far, and link the order to it.
        The trade's quantity is the order's; later fills of the order (`orders.record_fill`)
        extend the trade in the same transaction as each fill."""
        async with self.db.transaction(pipeline=True) as conn:
            return await open_trade_from_order(conn, as_uuid(order_id), **extra)

    # --- fills, close, cancel ----------------------------------------------------------
    async def add_fill(
        self, trade_id: UUID, *, quantity: Any, price: Any, fee: Any = Decimal(0)
    ) -> Trade:
        """A further fill of a partially filled trade; entry price becomes the weighted
        average. Never fills past quantity."""
        params = {
            "id": as_uuid(trade_id),
            "qty": parse_money("quantity", quantity, PositiveMoney),
            "price": parse_money("price", price, PositiveMoney),
            "fee": parse_money("fee", fee, NonNegativeMoney),
        }
        row = await self.db.query_one(ADD_FILL, params)
        if row is None:
            trade = await self.get(trade_id)
            raise Conflict(
                f"trade {trade.id}: cannot add a fill of {params['qty']} "
                f"({trade.status.value}, filled {trade.filled_quantity} of {trade.quantity})"
            )
        return to_trade(row)

    async def close(
        self,
        trade_id: UUID,
        *,
        exit_price: Any,
        exit_reason: str,
        exit_fee: Any = Decimal(0),
        exit_signal: dict[str, Any] | None = None,
        exit_tag: str | None = None,
        exit_time: datetime | None = None,
    ) -> Trade:
        """Close an open trade at exit_price: its P&L (see trading.pnl), its event and the
        strategy's statistics in one statement. Of concurrent closers one wins (the others
        get Conflict); a fill committed before the close is in its P&L."""
        trade_id = as_uuid(trade_id)
        price = parse_money("exit_price", exit_price, PositiveMoney)
        fee = parse_money("exit_fee", exit_fee, NonNegativeMoney)
        optional_aware("exit_time", exit_time)
        if not exit_reason or len(exit_reason) > 50:
            raise ValidationError(
                "exit_reason: 1 to 50 characters", field="exit_reason", value=exit_reason
            )
        params = {
            "id": trade_id,
            "exit_price": price,
            "exit_fee": fee,
            "exit_time": exit_time,
            "exit_reason": exit_reason,
            "exit_tag": exit_tag,
            "exit_signal": None
            if exit_signal is None
            else Jsonb(check_json(exit_signal, field="exit_signal")),
        }
        row = await self.db.query_one(CLOSE_AND_COUNT, params)
        if row is None:
            trade = await self.get(trade_id)
            if trade.status not in (TradeStatus.OPEN, TradeStatus.PARTIALLY_FILLED):
                raise Conflict(f"trade {trade_id} is already {trade.status.value}")
            raise Conflict(f"trade {trade_id} has nothing filled to close; cancel it")
        closed = to_trade(row)
        await self.cache.invalidate(strategy_key(closed.strategy_id), ACTIVE_KEY)
        return closed

    async def cancel(self, trade_id: UUID) -> Trade:
        trade_id = as_uuid(trade_id)
        row = await self.db.query_one(CANCEL_TRADE, (trade_id,))
        if row is None:
            trade = await self.get(trade_id)
            raise Conflict(f"trade {trade_id} is already {trade.status.value}")
        return to_trade(row)

    # --- reads ----------------------------------------------------------------------------
    async def get(self, trade_id: UUID) -> Trade:
        row = await self.db.query_one(SELECT_BY_ID, (as_uuid(trade_id),))
        if row is None:
            raise NotFound(f"no trade with id {trade_id}")
        return to_trade(row)

    async def open_trades(self, strategy_id: UUID | None = None) -> list[Trade]:
        if strategy_id is None:
            rows = await self.db.query(SELECT_OPEN)
        else:
            rows = await self.db.query(SELECT_OPEN_OF_STRATEGY, (as_uuid(strategy_id),))
        return [to_trade(r) for r in rows]

    async def history(
        self,
        filters: TradeFilters | None = None,
        *,
        page_size: int = 50,
        cursor: str | None = None,
        with_total: bool = True,
        include_archived: bool = False,
    ) -> TradePage:
        """Trades newest first (entry_time, id), a page at a time; with
        `include_archived`, archived trades too (the `trades_with_archive` view).

        Keyset pagination: the cursor is the last row's (entry_time, id), so page 10,000
        costs what page 1 costs. `total` counts every matching row (omit it on huge
        ranges with `with_total=False`).
        """
        filters = filters or TradeFilters()
        if not 1 <= page_size <= 10_000:
            raise ValidationError(
                "page_size must be between 1 and 10000", field="page_size", value=page_size
            )
        where, params = _where(filters)
        conditions = list(where)
        if cursor is not None:
            after_time, after_id = decode_cursor(cursor)
            conditions.append(
                sql.SQL("(entry_time, id) < ({}, {})").format(
                    sql.Placeholder("after_time"), sql.Placeholder("after_id")
                )
            )
            params.update(after_time=after_time, after_id=after_id)
        table = sql.Identifier("trades_with_archive" if include_archived else "trades")
        page_query = sql.SQL(
            "SELECT * FROM {} WHERE {} ORDER BY entry_time DESC, id DESC LIMIT {}"
        ).format(table, _and(conditions), sql.Placeholder("limit"))
        rows = await self.reads.query(page_query, {**params, "limit": page_size + 1})
        trades = [to_trade(r) for r in rows[:page_size]]
        more = len(rows) > page_size
        next_cursor = encode_cursor(trades[-1]) if more and trades else None
        total = None
        if with_total:
            count_query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, _and(where))
            total = int(await self.reads.query_value(count_query, params))
        return TradePage(trades=trades, next_cursor=next_cursor, total=total)

    async def frame(
        self, filters: TradeFilters | None = None, *, include_archived: bool = False
    ) -> Records:
        """Every matching trade, oldest entry first, as columns (`.to_pandas()`,
        `.to_polars()`, `.to_arrow()`; see tradestore.frames)."""
        where, params = _where(filters or TradeFilters())
        table = sql.Identifier("trades_with_archive" if include_archived else "trades")
        query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY entry_time, id").format(
            table, _and(where)
        )
        return await self.reads.records(query, params)


# --- helpers ---------------------------------------------------------------------------------


async def _insert(conn: Connection, new: NewTrade, *, order_id: UUID | None = None) -> Trade:
    """The trade and its event (and the order's link to it), one statement."""
    return await fetch_trade(await _send_insert(conn, new, order_id=order_id))


async def fetch_trade(cur: AsyncCursor[DictRow]) -> Trade:
    """The trade a statement sent by `send_*` returned (in a pipeline: once synced)."""
    row = await cur.fetchone()
    assert row is not None
    return to_trade(row)


async def _send_insert(
    conn: Connection, new: NewTrade, *, order_id: UUID | None = None
) -> AsyncCursor[DictRow]:
    """Send the trade's INSERT (with its event and the order's link); its row is read
    with `fetch_trade`."""
    filled = new.quantity if new.filled_quantity is None else new.filled_quantity
    params = annotation_params(new)
    params.update(
        side=new.side.value,
        type=new.type.value,
        filled_quantity=filled,
        status=(TradeStatus.OPEN if filled == new.quantity else TradeStatus.PARTIALLY_FILLED).value,
    )
    if order_id is not None:
        params["order_id"] = order_id
    return await conn.execute(OPEN_TRADE if order_id is None else OPEN_TRADE_FOR_ORDER, params)


def annotation_params(annotations: TradeAnnotations) -> dict[str, Any]:
    """A trade's fields as statement parameters, JSON values wrapped for jsonb."""
    params = annotations.model_dump()
    params.update(
        entry_signal=None if annotations.entry_signal is None else Jsonb(annotations.entry_signal),
        metadata=Jsonb(annotations.metadata),
    )
    return params


async def open_trade_from_order(conn: Connection, order_id: UUID, **extra: Any) -> Trade:
    """In the caller's transaction: a trade for what the order has filled, linked to it."""
    cur = await conn.execute(LOCK_ORDER, (order_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no order with id {order_id}")
    return await open_trade_for_order(conn, Order.model_validate(row), **extra)


async def open_trade_for_order(conn: Connection, order: Order, **extra: Any) -> Trade:
    """In the caller's transaction, which holds the order's row lock (it locked or
    updated it): a trade for what the order has filled, linked to it."""
    return await fetch_trade(await send_trade_for_order(conn, order, **extra))


async def send_trade_for_order(
    conn: Connection, order: Order, **extra: Any
) -> AsyncCursor[DictRow]:
    """`open_trade_for_order`'s statement, sent without waiting for its row: in a
    pipelined transaction it travels with the COMMIT (read it with `fetch_trade`)."""
    if order.trade_id is not None:
        raise Conflict(f"order {order.id} already opened trade {order.trade_id}")
    if order.filled_quantity <= 0:
        raise Conflict(f"order {order.id} has no fills yet ({order.status.value})")
    new = parse_input(
        NewTrade,
        {
            "strategy_id": order.strategy_id,
            "symbol": order.symbol,
            "side": order.side,
            "type": _trade_type(order.type.value),
            "entry_price": order.avg_fill_price,
            "quantity": order.quantity,
            "filled_quantity": order.filled_quantity,
            "fees": order.fees,
            "external_order_id": order.external_order_id,
            "entry_time": order.filled_at or order.submitted_at,
            **extra,
        },
    )
    return await _send_insert(conn, new, order_id=order.id)


async def follow_entry_orders(conn: Connection, trade_id: UUID) -> Trade | None:
    """Bring an open trade up to date with its entry orders' fills, in the caller's
    transaction (None when the trade is closed or cancelled: it no longer changes)."""
    cur = await conn.execute(FOLLOW_AND_EVENT, {"trade_id": trade_id})
    row = await cur.fetchone()
    return None if row is None else to_trade(row)


def _where(filters: TradeFilters) -> tuple[list[sql.Composable], dict[str, Any]]:
    conditions: list[sql.Composable] = [sql.SQL("true")]
    params: dict[str, Any] = {}
    if filters.strategy_id is not None:
        conditions.append(sql.SQL("strategy_id = %(strategy_id)s"))
        params["strategy_id"] = as_uuid(filters.strategy_id)
    if filters.symbol is not None:
        conditions.append(sql.SQL("symbol = %(symbol)s"))
        params["symbol"] = filters.symbol
    if filters.status is not None:
        conditions.append(sql.SQL("status = %(status)s"))
        params["status"] = parse_enum(TradeStatus, filters.status, field="status").value
    for name, op in (("date_from", ">="), ("date_to", "<=")):
        value = getattr(filters, name)
        if value is None:
            continue
        require_aware(name, value)
        conditions.append(sql.SQL("entry_time {} {}").format(sql.SQL(op), sql.Placeholder(name)))
        params[name] = value
    return conditions, params


def _and(conditions: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" AND ").join(conditions)


def encode_cursor(trade: Trade) -> str:
    raw = f"{trade.entry_time.isoformat()}|{trade.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        when, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(when), UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError(
            "cursor: not a cursor from history()", field="cursor", value=cursor
        ) from None


def _trade_type(order_type: str) -> str:
    return TRADE_TYPE_OF_ORDER_TYPE.get(order_type, order_type)


__all__ = ["OrderStatus", "TradeFilters", "TradePage", "TradeRepository"]
