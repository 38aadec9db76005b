"""The outbox: an event commits with the change that made it, or not at all."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest

from tradestore import Settings, TradeStore
from tradestore.realtime.events import NOTIFY_CHANNEL, EventType, append_event


async def test_event_commits_with_its_transaction(store: TradeStore) -> None:
    aggregate = uuid.uuid4()
    async with store.db.transaction() as conn:
        event_id = await append_event(
            conn, EventType.ORDER_CREATED, {"price": Decimal("0.10000001")}, aggregate_id=aggregate
        )
    row = await store.db.query_one("SELECT * FROM event_outbox WHERE id = %s", (event_id,))
    assert row is not None and row["event_type"] == "order.created"
    assert row["payload"] == {"price": "0.10000001"} and row["published_at"] is None

    with pytest.raises(RuntimeError):
        async with store.db.transaction() as conn:
            lost = await append_event(conn, EventType.TRADE_CLOSED, {}, aggregate_id=aggregate)
            raise RuntimeError("change failed")
    assert await store.db.query_one("SELECT 1 FROM event_outbox WHERE id = %s", (lost,)) is None


async def test_commit_notifies_the_relay_channel(store: TradeStore, settings: Settings) -> None:
    url = settings.postgres_conninfo()
    assert url is not None
    listener = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        async with store.db.transaction() as conn:
            await append_event(conn, EventType.CONFIG_CHANGED, {"key": "k"})
        gen = listener.notifies(timeout=5)
        note = await anext(gen)
        assert note.channel == NOTIFY_CHANNEL
    finally:
        await listener.close()
