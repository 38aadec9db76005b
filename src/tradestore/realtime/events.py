"""Notification events and the outbox they are written to.

Code that changes an order, a trade, a strategy or a config value calls `append_event`
with the connection of its own transaction, so the event commits with the change or not
at all. The relay (`EventBus` in `tradestore.realtime.bus`) publishes committed events
to Redis.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from tradestore.db.database import Connection


class EventType(StrEnum):
    ORDER_CREATED = "order.created"
    ORDER_FILLED = "order.filled"
    ORDER_PARTIALLY_FILLED = "order.partially_filled"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_REJECTED = "order.rejected"
    TRADE_OPENED = "trade.opened"
    TRADE_FILLED = "trade.filled"
    TRADE_CLOSED = "trade.closed"
    STRATEGY_UPDATED = "strategy.updated"
    CONFIG_CHANGED = "config.changed"
    CANDLE_CLOSED = "candle.closed"


INSERT_EVENT = """
INSERT INTO event_outbox (event_type, aggregate_id, payload)
VALUES (%s, %s, %s::jsonb)
"""

NOTIFY_CHANNEL = "tradestore_outbox"  # see the trigger in migration 0003


def event_literal(kind: EventType) -> str:
    """An event type as an SQL string literal (its values are fixed identifiers)."""
    return f"'{kind.value}'"


def with_event(statement: str, event_type: str, payload: str, *, also: str = "") -> str:
    """`statement` (an INSERT or UPDATE ... RETURNING *) and an outbox event for each row
    it returns, as one statement that returns those rows: one round trip, not two.

    `event_type` and `payload` are SQL expressions over the returned row, named
    `changed` (numbers as NUMERIC's text in the payload: exact, like `encode_payload`'s).
    `also` adds further data-modifying CTEs that may read `changed` (", name AS (...)").
    Every part is a module constant of the caller, never input: values are bound.
    """
    return (
        f"WITH changed AS ({statement}),\n"  # noqa: S608
        "outbox AS (INSERT INTO event_outbox (event_type, aggregate_id, payload)\n"
        f"           SELECT {event_type}, changed.id::text, {payload} FROM changed)"
        f"{also}\n"
        "SELECT * FROM changed"
    )


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: never through float
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, StrEnum):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__} in an event payload")


def encode_payload(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=_default, separators=(",", ":"), sort_keys=True)


async def append_event(
    conn: Connection,
    event_type: EventType,
    payload: dict[str, Any],
    *,
    aggregate_id: UUID | str | None = None,
) -> None:
    """Write an event in the caller's transaction.

    A trigger on the outbox NOTIFYs the relay, delivered only if the transaction commits.
    """
    await conn.execute(
        INSERT_EVENT,
        (
            event_type.value,
            None if aggregate_id is None else str(aggregate_id),
            encode_payload(payload),
        ),
    )
