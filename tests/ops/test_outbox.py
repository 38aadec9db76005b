"""Outbox retention: published events past the retention go, in batches; unpublished
ones never do, however old."""

from __future__ import annotations

import pytest

from tests.trading.helpers import new_strategy
from tradestore import TradeStore
from tradestore.ops.outbox import prune_outbox


@pytest.fixture
def fresh(fresh_store: TradeStore) -> TradeStore:
    return fresh_store


async def test_published_events_past_retention_are_pruned_unpublished_never(
    fresh: TradeStore,
) -> None:
    for _ in range(30):
        await new_strategy(fresh)  # one strategy.created event each
    ids = [r["id"] for r in await fresh.db.query("SELECT id FROM event_outbox ORDER BY id")]
    old_published, unpublished, recent = ids[:20], ids[20:25], ids[25:]
    await fresh.db.execute(
        "UPDATE event_outbox SET published_at = now() - interval '8 days', "
        "created_at = now() - interval '8 days' WHERE id = ANY(%s)",
        (old_published,),
    )
    await fresh.db.execute(
        "UPDATE event_outbox SET created_at = now() - interval '30 days' WHERE id = ANY(%s)",
        (unpublished,),
    )
    await fresh.db.execute(
        "UPDATE event_outbox SET published_at = now() WHERE id = ANY(%s)", (recent,)
    )
    planned = [a for a in await fresh.maintenance.plan() if a.task == "outbox"]
    assert planned and planned[0].target == "20 published event(s)"
    done = await fresh.maintenance.run()
    assert "outbox: deleted 20 published event(s)" in done
    left = {r["id"] for r in await fresh.db.query("SELECT id FROM event_outbox")}
    assert left == set(unpublished) | set(recent)


async def test_prune_works_in_batches_and_honours_the_config(fresh: TradeStore) -> None:
    from datetime import timedelta

    for _ in range(25):
        await new_strategy(fresh)
    await fresh.db.execute("UPDATE event_outbox SET published_at = now() - interval '3 days'")
    assert await prune_outbox(fresh.db, timedelta(days=7), batch=10) == 0
    await fresh.config.set("events.outbox_retention_days", 2)
    assert [a.task for a in await fresh.maintenance.plan() if a.task == "outbox"] == ["outbox"]
    assert await prune_outbox(fresh.db, timedelta(days=2), batch=10) == 25
    assert await fresh.db.query_value("SELECT count(*) FROM event_outbox") == 1  # config event
