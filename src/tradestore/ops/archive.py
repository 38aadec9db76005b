"""Trade archive: finished trades (CLOSED or CANCELLED) that finished before a cutoff
(two years ago by default; `archive.after_days` in the config store, or
`maintain run --archive-after`) move to trades_archive in batches, each a short
transaction, while new trades keep coming. Open positions never move, however old.
Archived trades stay readable through the `trades_with_archive` view (history with
`include_archived=True`, reports, daily metrics, strategy performance).

A run is recorded in archive_runs with the counts it started from; a run that crashed
stays RUNNING and the next call resumes it with the same cutoff. When no eligible trade
is left, the counts are checked (archive grew by exactly what was moved, nothing older
than the cutoff remains) and the run is marked DONE, or FAILED with the discrepancy.

Orders keep their link: before a trade moves, orders pointing at it get
metadata.archived_trade_id (the foreign key then sets trade_id to NULL); system_logs
rows lose theirs (logs are kept 30 days, trades two years).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tradestore.db.database import Database
from tradestore.ops.tasks import PlannedAction, Progress

if TYPE_CHECKING:
    from tradestore.config.store import ConfigStore

DEFAULT_AGE = timedelta(days=730)
AGE_CONFIG_KEY = "archive.after_days"
# "finished before the cutoff" is the predicate of idx_trades_finished_at (0010)
OPEN_RUN = "SELECT * FROM archive_runs WHERE status = 'RUNNING'"
START_RUN = """
INSERT INTO archive_runs (cutoff, eligible_before, archive_before)
SELECT %(cutoff)s, (SELECT count(*) FROM trades
         WHERE status IN ('CLOSED', 'CANCELLED')
           AND coalesce(exit_time, entry_time) < %(cutoff)s),
       (SELECT count(*) FROM trades_archive)
RETURNING *
"""
ELIGIBLE = """
SELECT count(*) FROM trades
 WHERE status IN ('CLOSED', 'CANCELLED') AND coalesce(exit_time, entry_time) < %(cutoff)s
"""
MOVE_BATCH = """
WITH picked AS (
    SELECT id FROM trades
     WHERE status IN ('CLOSED', 'CANCELLED') AND coalesce(exit_time, entry_time) < %(cutoff)s
     ORDER BY coalesce(exit_time, entry_time), id LIMIT %(batch)s FOR UPDATE SKIP LOCKED
), linked AS (
    UPDATE orders o SET metadata = coalesce(o.metadata, '{}'::jsonb)
                                   || jsonb_build_object('archived_trade_id', o.trade_id)
      FROM picked WHERE o.trade_id = picked.id
), moved AS (
    DELETE FROM trades t USING picked WHERE t.id = picked.id RETURNING t.*
)
INSERT INTO trades_archive SELECT * FROM moved
"""
ADD_MOVED = "UPDATE archive_runs SET moved = moved + %s WHERE id = %s"
FINISH = """
UPDATE archive_runs SET status = %s, finished_at = now(), error_message = %s WHERE id = %s
RETURNING *
"""


@dataclass(frozen=True)
class ArchiveResult:
    run_id: int
    cutoff: datetime
    moved: int
    status: str
    resumed: bool
    message: str | None = None


class TradeArchiver:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def run(
        self,
        *,
        older_than: timedelta = DEFAULT_AGE,
        batch: int = 1000,
        progress: Progress | None = None,
        max_batches: int | None = None,
    ) -> ArchiveResult:
        """Move old trades; `max_batches` stops early (the run stays resumable)."""
        run = await self.db.query_one(OPEN_RUN)
        resumed = run is not None
        if run is None:
            run = await self.db.query_one(START_RUN, {"cutoff": datetime.now(UTC) - older_than})
        assert run is not None
        cutoff, moved, batches = run["cutoff"], int(run["moved"]), 0
        total = int(run["eligible_before"])
        while max_batches is None or batches < max_batches:
            async with self.db.transaction() as conn:
                cur = await conn.execute(MOVE_BATCH, {"cutoff": cutoff, "batch": batch})
                n = cur.rowcount
                await conn.execute(ADD_MOVED, (n, run["id"]))
            moved += n
            batches += 1
            if progress is not None:
                progress(moved, max(total, moved))
            if n == 0:
                return await self._finish(run, moved, resumed)
        return ArchiveResult(run["id"], cutoff, moved, "RUNNING", resumed)

    async def _finish(self, run: dict[str, Any], moved: int, resumed: bool) -> ArchiveResult:
        archive_now = int(await self.db.query_value("SELECT count(*) FROM trades_archive"))
        left = int(await self.db.query_value(ELIGIBLE, {"cutoff": run["cutoff"]}))
        problems = []
        if archive_now != int(run["archive_before"]) + moved:
            problems.append(
                f"archive grew by {archive_now - int(run['archive_before'])} "
                f"rows, {moved} were moved"
            )
        if left:
            problems.append(f"{left} finished trade(s) older than the cutoff remain")
        if moved < int(run["eligible_before"]):
            problems.append(f"{run['eligible_before']} were eligible, {moved} moved")
        status = "FAILED" if problems else "DONE"
        message = "; ".join(problems) or None
        await self.db.query_one(FINISH, (status, message, run["id"]))
        return ArchiveResult(
            int(run["id"]),
            run["cutoff"],
            moved,
            status,
            resumed,
            message,
        )

    async def plan(self, older_than: timedelta = DEFAULT_AGE) -> list[PlannedAction]:
        run = await self.db.query_one(OPEN_RUN)
        cutoff = run["cutoff"] if run else datetime.now(UTC) - older_than
        n = int(await self.db.query_value(ELIGIBLE, {"cutoff": cutoff}))
        if not n and not run:
            return []
        what = "resume archive run" if run else "archive"
        return [
            PlannedAction(
                "archive",
                what,
                f"{n} closed or cancelled trade(s)",
                f"finished before {cutoff:%Y-%m-%d} (open trades stay)",
            )
        ]


class ArchiveTask:
    """The maintenance task; `older_than` overrides the config store's age."""

    name = "archive"

    def __init__(
        self, db: Database, config: ConfigStore, older_than: timedelta | None = None
    ) -> None:
        self.archiver = TradeArchiver(db)
        self.config = config
        self.older_than = older_than

    async def plan(self) -> list[PlannedAction]:
        return await self.archiver.plan(await self._age())

    async def run(self, progress: Progress | None = None) -> list[str]:
        age = await self._age()
        result = await self.archiver.run(older_than=age, progress=progress)
        if not result.moved and result.status == "DONE":
            return []
        note = f" ({result.message})" if result.message else ""
        return [f"archive: {result.moved} trade(s) moved, run {result.status}{note}"]

    async def _age(self) -> timedelta:
        if self.older_than is not None:
            return self.older_than
        return await self.config.get_days(AGE_CONFIG_KEY, DEFAULT_AGE)
