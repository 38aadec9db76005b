"""The outbox: an event commits with the change that made it, or not at all."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest

from tradestore import Settings, TradeStore
from tradestore.realtime.events import NOTIFY_CHANNEL, EventType, append_event


async def test_event_commits_with_its_transaction(store: TradeStore) -> None:
    committed, lost = uuid.uuid4(), uuid.uuid4()
    async with store.db.transaction() as conn:
        await append_event(
            conn, EventType.ORDER_CREATED, {"price": Decimal("0.10000001")}, aggregate_id=committed
        )
    with pytest.raises(RuntimeError):
        async with store.db.transaction() as conn:
            await append_event(conn, EventType.TRADE_CLOSED, {}, aggregate_id=lost)
            raise RuntimeError("change failed")
    rows = await store.db.query(
        "SELECT * FROM event_outbox WHERE aggregate_id = ANY(%s)", ([str(committed), str(lost)],)
    )
    assert [r["aggregate_id"] for r in rows] == [str(committed)]  # the rolled back one is not
    assert all(r["event_type"] == "order.created" for r in rows)
    assert all(r["payload"] == {"price": "0.10000001"} and r["published_at"] is None for r in rows)


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
