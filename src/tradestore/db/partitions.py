"""Time partitions for market_data, portfolio_snapshots and system_logs.

On TimescaleDB the hypertables make their chunks themselves and this is a no-op.
On plain PostgreSQL, a writer calls `ensure(table, first_ts, last_ts)` before writing
rows in that time range; the database function `ts_ensure_partitions` (migration 0002)
creates what is missing, safely when several writers race for the same partition.
Ranges known to exist are remembered in-process, so the steady state costs nothing.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from tradestore.db.database import Database
from tradestore.settings import TimeSeriesMode

PARTITIONED_TABLES = frozenset({"market_data", "portfolio_snapshots", "system_logs"})

ENSURE_SQL = "SELECT partition_name, range_start, range_end FROM ts_ensure_partitions(%s, %s, %s)"
PREMAKE_SQL = """
SELECT p.table_name, e.partition_name, e.range_start, e.range_end
  FROM ts_partition_policy p,
       LATERAL ts_ensure_partitions(p.table_name, now(), now() + p.partition_interval * p.premake) e
"""
PARTITIONS = """
SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = %s::regclass ORDER BY c.relname
"""
BOUND_RE = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    """A native partition of `table` holding [start, end)."""

    table: str
    name: str
    start: datetime
    end: datetime


async def partitions_of(db: Database, table: str) -> list[Partition]:
    """The native partitions of table, by name (none on TimescaleDB)."""
    out = []
    for row in await db.query(PARTITIONS, (table,)):
        match = BOUND_RE.search(row["bound"] or "")
        if match:
            out.append(Partition(table, row["name"], _ts(match[1]), _ts(match[2])))
    return out


def _ts(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace(" ", "T"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class PartitionManager:
    def __init__(self, db: Database, mode: TimeSeriesMode) -> None:
        self.db = db
        self.mode = mode
        self._known: dict[str, list[tuple[datetime, datetime]]] = {}
        self._lock = asyncio.Lock()

    async def ensure(self, table: str, first: datetime, last: datetime) -> None:
        """Make sure rows with timestamps in [first, last] have a partition to go to."""
        if self.mode is TimeSeriesMode.TIMESCALE:
            return
        if table not in PARTITIONED_TABLES:
            raise ValueError(f"{table} is not a time-partitioned table")
        if self._covered(table, first, last):
            return
        async with self._lock:
            if self._covered(table, first, last):
                return
            rows = await self.db.query(ENSURE_SQL, (table, first, last))
            self._remember(table, [(r["range_start"], r["range_end"]) for r in rows])

    async def premake(self) -> list[Partition]:
        """Create the partitions ahead of now that the policies ask for."""
        if self.mode is TimeSeriesMode.TIMESCALE:
            return []
        rows = await self.db.query(PREMAKE_SQL)
        return [
            Partition(r["table_name"], r["partition_name"], r["range_start"], r["range_end"])
            for r in rows
        ]

    def forget(self, table: str | None = None) -> None:
        """Drop what is remembered (after partitions were dropped)."""
        if table is None:
            self._known.clear()
        else:
            self._known.pop(table, None)

    def _covered(self, table: str, first: datetime, last: datetime) -> bool:
        point = first
        for start, end in self._known.get(table, ()):
            if start <= point < end:
                if last < end:
                    return True
                point = end
        return False

    def _remember(self, table: str, ranges: list[tuple[datetime, datetime]]) -> None:
        merged = sorted(set(self._known.get(table, [])) | set(ranges))
        self._known[table] = merged
