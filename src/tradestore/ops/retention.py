"""Retention: drop whole partitions (plain PostgreSQL) or chunks (TimescaleDB) older
than each table's policy (retention_policy: system_logs 30 days, others keep forever
by default). Never a row-by-row DELETE. Market-data catalog counts are corrected from
the dropped partition's own per-series counts before it goes."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from tradestore.db.database import Connection, Database
from tradestore.db.partitions import Partition, PartitionManager, partitions_of
from tradestore.errors import TransientError, ValidationError
from tradestore.ops.tasks import PlannedAction, Progress
from tradestore.settings import TimeSeriesMode

TABLES = ("market_data", "portfolio_snapshots", "system_logs")
POLICIES = "SELECT table_name, keep FROM retention_policy WHERE keep IS NOT NULL"
SET_POLICY = """
UPDATE retention_policy SET keep = %s, updated_at = now() WHERE table_name = %s
"""
SERIES_IN = sql.SQL(
    "SELECT venue, symbol, timeframe, count(*) AS n FROM {} GROUP BY venue, symbol, timeframe"
)
CATALOG_SUBTRACT = """
UPDATE market_data_catalog SET row_count = greatest(row_count - %(n)s, 0),
       first_ts = coalesce((SELECT min(timestamp) FROM market_data
                             WHERE venue = %(venue)s AND symbol = %(symbol)s
                               AND timeframe = %(timeframe)s AND timestamp >= %(after)s),
                         first_ts),
       version = nextval('market_data_catalog_version_seq'), updated_at = now()
 WHERE venue = %(venue)s AND symbol = %(symbol)s AND timeframe = %(timeframe)s
"""
CATALOG_EMPTY = "DELETE FROM market_data_catalog WHERE row_count = 0"
DROP_BLOCKS = """
DELETE FROM market_data_block WHERE period_end <= %s RETURNING venue, symbol, timeframe
"""
HAS_BLOCKS = """
SELECT 1 FROM market_data_block WHERE venue = %s AND symbol = %s AND timeframe = %s LIMIT 1
"""
RECOUNT_SERIES = "SELECT market_data_catalog_refresh(%s, %s, %s)"
log = logging.getLogger(__name__)
SET_DETACH_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '1s'"
DETACH_ATTEMPTS = 5
LOCK_NOT_AVAILABLE = "55P03"
DROP_CHUNKS = "SELECT drop_chunks(%s::regclass, older_than => %s) AS chunk"
# TimescaleDB: the column blocks that ended as long ago as the chunks dropped
DROP_OLD_BLOCKS = "DELETE FROM market_data_block WHERE period_end <= now() - %s"
RECOUNT_OLD_SERIES = """
SELECT market_data_catalog_refresh(venue, symbol, timeframe) FROM market_data_catalog
 WHERE first_ts < now() - %s
"""
REMOVE_JOB = "SELECT remove_retention_policy(%s::regclass, if_exists => TRUE)"
ADD_JOB = "SELECT add_retention_policy(%s::regclass, drop_after => %s)"


class Retention:
    def __init__(self, db: Database, mode: TimeSeriesMode) -> None:
        self.db = db
        self.mode = mode

    async def set_policy(self, table: str, keep: timedelta | None) -> None:
        """How long table keeps its rows (None: forever). The retention_policy table is
        the one source of truth; on TimescaleDB the background job of a table without a
        catalog (system_logs, portfolio_snapshots) is made to match it in the same
        transaction. market_data is always dropped by `maintain run`, which corrects the
        catalog (a TimescaleDB job could not)."""
        if table not in TABLES:
            raise ValidationError(f"no retention for {table!r}", field="table", value=table)
        async with self.db.transaction() as conn:
            await conn.execute(SET_POLICY, (keep, table))
            if self.mode is TimeSeriesMode.TIMESCALE and table != "market_data":
                await conn.execute(REMOVE_JOB, (table,))
                if keep is not None:
                    await conn.execute(ADD_JOB, (table, keep))

    async def expired(self, now: datetime | None = None) -> list[Partition]:
        """Native partitions entirely older than their table's policy."""
        now = now or datetime.now(UTC)
        out: list[Partition] = []
        for policy in await self.db.query(POLICIES):
            cutoff = now - policy["keep"]
            out += [
                p for p in await partitions_of(self.db, policy["table_name"]) if p.end <= cutoff
            ]
        return out

    async def plan(self) -> list[PlannedAction]:
        if self.mode is TimeSeriesMode.TIMESCALE:
            return [
                PlannedAction(
                    "retention", "drop", f"{r['table_name']} chunks", f"older than {r['keep']}"
                )
                for r in await self.db.query(POLICIES)
            ]
        return [
            PlannedAction("retention", "drop", p.name, f"{p.start:%Y-%m-%d} to {p.end:%Y-%m-%d}")
            for p in await self.expired()
        ]

    async def run(self, progress: Progress | None = None) -> list[str]:
        if self.mode is TimeSeriesMode.TIMESCALE:
            return await self._drop_chunks()
        expired = await self.expired()
        for i, part in enumerate(expired, 1):
            await self.drop(part)
            if progress is not None:
                progress(i, len(expired))
        return [f"retention: dropped {p.name}" for p in expired]

    async def _drop_chunks(self) -> list[str]:
        """TimescaleDB: drop whole chunks past each policy; for market_data, the column
        blocks as old too, and recount the series that had candles that old (the catalog,
        and its version, stay true)."""
        done = []
        for r in await self.db.query(POLICIES):
            table, keep = r["table_name"], r["keep"]
            blocks = 0
            async with self.db.transaction() as conn:
                cur = await conn.execute(DROP_CHUNKS, (table, keep))
                dropped = len(await cur.fetchall())
                if table == "market_data":
                    blocks = (await conn.execute(DROP_OLD_BLOCKS, (keep,))).rowcount
                    if dropped or blocks:
                        await conn.execute(RECOUNT_OLD_SERIES, (keep,))
            if dropped:
                done.append(f"retention: dropped {dropped} {table} chunk(s) older than {keep}")
            if blocks:
                done.append(f"retention: dropped {blocks} column block(s) older than {keep}")
        return done

    async def drop(self, part: Partition, conn: Connection | None = None) -> None:
        """Detach and drop a partition and correct the catalog, in one transaction (the
        caller's, when given).

        DETACH needs an ACCESS EXCLUSIVE lock on the hot parent; queued behind a long
        reader it would make every new reader and writer of the table wait too. So it
        waits at most DETACH_LOCK_TIMEOUT, then gives way and tries again later (with
        backoff, DETACH_ATTEMPTS times in all)."""
        if conn is not None:
            await conn.execute(SET_DETACH_LOCK_TIMEOUT)
            await self._drop(part, conn)
            return
        for attempt in range(1, DETACH_ATTEMPTS + 1):
            try:
                async with self.db.transaction() as own:
                    await own.execute(SET_DETACH_LOCK_TIMEOUT)
                    await self._drop(part, own)
                return
            except TransientError as exc:
                if exc.sqlstate != LOCK_NOT_AVAILABLE or attempt == DETACH_ATTEMPTS:
                    raise
                log.info("retention: %s is busy, retrying its drop (%s)", part.name, exc)
                await asyncio.sleep(min(5.0, 0.5 * 2**attempt))

    async def _drop(self, part: Partition, conn: Connection) -> None:
        counts = []
        if part.table == "market_data":
            cur = await conn.execute(SERIES_IN.format(sql.Identifier(part.name)))
            counts = await cur.fetchall()
        await conn.execute(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                sql.Identifier(part.table), sql.Identifier(part.name)
            )
        )
        await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(part.name)))
        for c in counts:
            await conn.execute(CATALOG_SUBTRACT, {**c, "after": part.end})
        if counts:
            await conn.execute(CATALOG_EMPTY)
        if part.table == "market_data":
            await self._drop_blocks(conn, part.end, counts)

    async def _drop_blocks(self, conn: Connection, end: datetime, counts: list[Any]) -> None:
        """Column blocks whose period ended by `end` go with the partition (one reaching
        past it stays until the next: at least the policy is kept); the catalog of every
        series with blocks involved is recounted (its first candle may be in a block)."""
        cur = await conn.execute(DROP_BLOCKS, (end,))
        series = {(r["venue"], r["symbol"], r["timeframe"]) for r in await cur.fetchall()}
        for c in counts:
            key = (c["venue"], c["symbol"], c["timeframe"])
            cur = await conn.execute(HAS_BLOCKS, key)
            if await cur.fetchone():
                series.add(key)
        for key in sorted(series):
            await conn.execute(RECOUNT_SERIES, key)


class RetentionTask:
    name = "retention"

    def __init__(self, retention: Retention, partitions: PartitionManager) -> None:
        self.retention = retention
        self.partitions = partitions

    async def plan(self) -> list[PlannedAction]:
        return await self.retention.plan()

    async def run(self, progress: Progress | None = None) -> list[str]:
        done = await self.retention.run(progress)
        self.partitions.forget()  # dropped partitions are made again when needed
        return done
