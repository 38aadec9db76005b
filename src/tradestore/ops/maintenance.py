"""One maintenance entry point: plan what would be done, run it, or run it on a schedule.

Tasks (tradestore.ops.tasks.MaintenanceTask): partitions (premake ahead of now),
retention, trade archive, compression, rollups, then column blocks of closed candle
periods (after the rollups: a period waiting for its rollups is not packed). `run` holds
a PostgreSQL advisory lock for its duration: a second maintainer started meanwhile is
told so and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

from tradestore.config.store import ConfigStore
from tradestore.db.database import Database
from tradestore.db.partitions import PartitionManager
from tradestore.errors import Conflict
from tradestore.marketdata.blocks import Compactor, CompactTask
from tradestore.marketdata.rollups import Rollups
from tradestore.ops.archive import ArchiveTask
from tradestore.ops.compression import Compression, CompressionTask
from tradestore.ops.outbox import OutboxPruneTask
from tradestore.ops.retention import Retention, RetentionTask
from tradestore.ops.tasks import MaintenanceTask, PlannedAction, Progress
from tradestore.settings import TimeSeriesMode
from tradestore.supervisor import Supervised

log = logging.getLogger(__name__)
LOCK_KEY = 7_415_203_982  # pg_advisory_lock key of maintenance (migrations use ...981)


class Maintenance:
    """Every maintenance task over the parts it works on; `store.maintenance` builds it."""

    def __init__(
        self,
        db: Database,
        mode: TimeSeriesMode,
        *,
        partitions: PartitionManager,
        retention: Retention,
        rollups: Rollups,
        config: ConfigStore,
        compactor: Compactor | None = None,
        session: Callable[[], AbstractAsyncContextManager[Database]] | None = None,
    ) -> None:
        self.db = db
        # where the maintenance lock is held: a session that lasts (past PgBouncer)
        self.session = session
        self.mode = mode
        self.partitions = partitions
        self.retention = retention
        self.rollups = rollups
        self.config = config
        self.compactor = compactor

    def tasks(self, *, archive_after: timedelta | None = None) -> list[MaintenanceTask]:
        """Every maintenance task, in the order they run."""
        return [
            PartitionsTask(self.db, self.partitions),
            RetentionTask(self.retention, self.partitions),
            ArchiveTask(self.db, self.config, archive_after),
            OutboxPruneTask(self.db, self.config),
            RollupTask(self.rollups),
            *([CompactTask(self.compactor)] if self.compactor is not None else []),
            # after the compaction: TimescaleDB compresses only the rows it left
            CompressionTask(Compression(self.db, self.mode)),
        ]

    async def plan(self, *, archive_after: timedelta | None = None) -> list[PlannedAction]:
        actions: list[PlannedAction] = []
        for task in self.tasks(archive_after=archive_after):
            actions += await task.plan()
        return actions

    async def run(
        self,
        *,
        on_task: Callable[[str], Progress] | None = None,
        archive_after: timedelta | None = None,
    ) -> list[str]:
        """Run every task once under the maintenance lock; lines of what was done."""
        async with self._session() as lock_db, lock_db.connection() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (LOCK_KEY,))
            row = await cur.fetchone()
            if not (row and row["got"]):
                raise Conflict("another maintainer is running: nothing done")
            try:
                done: list[str] = []
                for task in self.tasks(archive_after=archive_after):
                    done += await task.run(on_task(task.name) if on_task else None)
                return done
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Database]:
        if self.session is None:
            yield self.db
            return
        async with self.session() as db:
            yield db

    async def schedule(
        self, *, interval_s: float, on_round: Callable[[list[str]], None] | None = None
    ) -> None:
        """Run maintenance every interval_s until cancelled (TimescaleDB's own policies
        handle compression and retention of logs meanwhile). A round
        that fails (database down) is logged and retried with backoff: the schedule goes
        on."""

        async def rounds() -> None:
            while not loop.stopping:
                try:
                    done = await self.run()
                except Conflict as exc:
                    done = [str(exc)]
                loop.healthy()
                if on_round is not None:
                    on_round(done)
                if not await loop.sleep(interval_s):
                    return

        loop = Supervised("maintenance schedule", rounds, backoff_max_s=60.0)
        await loop.run_until_cancelled()


class PartitionsTask:
    name = "partitions"

    def __init__(self, db: Database, partitions: PartitionManager) -> None:
        self.db = db
        self.partitions = partitions

    async def plan(self) -> list[PlannedAction]:
        if self.partitions.mode is TimeSeriesMode.TIMESCALE:
            return []
        rows = await self.db.query(
            "SELECT p.table_name, g.ts FROM ts_partition_policy p, LATERAL "
            "generate_series(0, p.premake) AS k, LATERAL (SELECT ts_partition_start("
            "p.partition_interval, now() + p.partition_interval * k) AS ts) g"
        )
        existing = {r["relname"] for r in await self.db.query("SELECT relname FROM pg_class")}
        return [
            PlannedAction("partitions", "create", name, "ahead of now")
            for r in rows
            if (name := f"{r['table_name']}_p{r['ts']:%Y%m%d}") not in existing
        ]

    async def run(self, progress: Progress | None = None) -> list[str]:
        before = {a.target for a in await self.plan()}
        await self.partitions.premake()
        return [f"partitions: created {name}" for name in sorted(before)]


class RollupTask:
    name = "rollups"

    def __init__(self, rollups: Rollups) -> None:
        self.rollups = rollups

    async def plan(self) -> list[PlannedAction]:
        return await self.rollups.plan()

    async def run(self, progress: Progress | None = None) -> list[str]:
        result = await self.rollups.refresh(progress=progress)
        return (
            [f"rollups: {result.days} day(s) recomputed, {result.rows} rows"] if result.days else []
        )
