"""Outbox retention: published events older than a retention (7 days by default, config
`events.outbox_retention_days`) are deleted in batches by `maintain run`. An unpublished
event is never deleted, however old: it is still owed to Redis."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from tradestore.db.database import Database
from tradestore.ops.tasks import PlannedAction, Progress

if TYPE_CHECKING:
    from tradestore.config.store import ConfigStore

DEFAULT_RETENTION = timedelta(days=7)
RETENTION_CONFIG_KEY = "events.outbox_retention_days"
BATCH = 10_000
PRUNABLE = """
SELECT count(*) FROM event_outbox
 WHERE published_at IS NOT NULL AND published_at < now() - %(keep)s
"""
PRUNE_BATCH = """
DELETE FROM event_outbox WHERE id IN (
    SELECT id FROM event_outbox
     WHERE published_at IS NOT NULL AND published_at < now() - %(keep)s
     LIMIT %(batch)s)
"""


async def prune_outbox(
    db: Database, keep: timedelta, *, batch: int = BATCH, progress: Progress | None = None
) -> int:
    """Delete published events older than keep, batch by batch; how many went."""
    total = int(await db.query_value(PRUNABLE, {"keep": keep}))
    deleted = 0
    while True:
        n = await db.execute(PRUNE_BATCH, {"keep": keep, "batch": batch})
        deleted += n
        if progress is not None:
            progress(deleted, max(total, deleted))
        if n < batch:
            return deleted


class OutboxPruneTask:
    name = "outbox"

    def __init__(self, db: Database, config: ConfigStore) -> None:
        self.db = db
        self.config = config

    async def plan(self) -> list[PlannedAction]:
        keep = await self._retention()
        n = int(await self.db.query_value(PRUNABLE, {"keep": keep}))
        if not n:
            return []
        return [
            PlannedAction(
                "outbox",
                "delete",
                f"{n} published event(s)",
                f"published over {keep.days} days ago",
            )
        ]

    async def run(self, progress: Progress | None = None) -> list[str]:
        deleted = await prune_outbox(self.db, await self._retention(), progress=progress)
        return [f"outbox: deleted {deleted} published event(s)"] if deleted else []

    async def _retention(self) -> timedelta:
        return await self.config.get_days(RETENTION_CONFIG_KEY, DEFAULT_RETENTION)
