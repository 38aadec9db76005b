"""Database metrics, as the seed's DatabaseMetrics and more: connections by state, top
queries (pg_stat_statements, when installed), table and index sizes with row estimates
and index usage, cache hit ratio, pool utilisation, lock waits, long-running queries,
database size and disk usage, replication lag, and Redis memory, hit rate and clients.
Every part is collected independently: one failing part is reported, not raised."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradestore.db.database import Database
from tradestore.db.replicas import ReadRouter
from tradestore.redis_link import RedisLink

CONNECTIONS = """
SELECT coalesce(state, 'unknown') AS state, application_name, count(*)::int AS n
  FROM pg_stat_activity WHERE datname = current_database() GROUP BY 1, 2
"""
APPLICATION = "tradestore"  # the application_name of the store's own pools (the monitor's
# pool is "tradestore-monitor", so the application's connections are told apart)
HAS_STATEMENTS = "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
TOP_QUERIES = """
SELECT calls, round(total_exec_time::numeric, 3) AS total_ms,
       round(mean_exec_time::numeric, 3) AS mean_ms, left(query, 200) AS query
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY total_exec_time DESC LIMIT 10
"""
# Sizes and row estimates; a partitioned table sums its leaf partitions (for a plain
# table pg_partition_tree returns no rows, so the table stands for itself).
TABLES = """
SELECT table_name, table_bytes, index_bytes, rows_estimate FROM (
    SELECT p.relname AS table_name,
           sum(pg_table_size(c.oid))::bigint AS table_bytes,
           sum(pg_indexes_size(c.oid))::bigint AS index_bytes,
           sum(greatest(c.reltuples, 0))::bigint AS rows_estimate
      FROM pg_class p
      JOIN pg_namespace n ON n.oid = p.relnamespace AND n.nspname = current_schema()
      LEFT JOIN LATERAL pg_partition_tree(p.oid) t ON t.isleaf
      JOIN pg_class c ON c.oid = coalesce(t.relid, p.oid)
     WHERE p.relkind IN ('r', 'p') AND NOT p.relispartition
     GROUP BY p.relname) sizes
 ORDER BY table_bytes + index_bytes DESC
"""
# TimescaleDB keeps a hypertable's rows in chunks that inherit from it (not partitions):
# their sizes come from hypertable_detailed_size, compressed chunks included.
HAS_TIMESCALE = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
HYPERTABLE_SIZES = """
SELECT h.hypertable_name AS table_name,
       (s.table_bytes + coalesce(s.toast_bytes, 0))::bigint AS table_bytes,
       s.index_bytes::bigint AS index_bytes,
       approximate_row_count(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass)
           AS rows_estimate
  FROM timescaledb_information.hypertables h,
       LATERAL hypertable_detailed_size(
           format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass) s
 WHERE h.hypertable_schema = current_schema()
"""
INDEX_USAGE = """
SELECT relname AS table_name, indexrelname AS index_name, idx_scan AS scans,
       pg_relation_size(indexrelid) AS bytes
  FROM pg_stat_user_indexes ORDER BY idx_scan ASC, bytes DESC LIMIT 20
"""
CACHE_HIT = """
SELECT CASE WHEN blks_hit + blks_read = 0 THEN NULL
            ELSE blks_hit::float / (blks_hit + blks_read) END AS ratio
  FROM pg_stat_database WHERE datname = current_database()
"""
LOCK_WAITS = """
SELECT pid, extract(epoch FROM now() - coalesce(state_change, query_start)) * 1000 AS wait_ms,
       left(query, 200) AS query
  FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock'
 ORDER BY wait_ms DESC
"""
LONG_QUERIES = """
SELECT pid, extract(epoch FROM now() - query_start) * 1000 AS running_ms,
       left(query, 200) AS query
  FROM pg_stat_activity
 WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
 ORDER BY running_ms DESC LIMIT 10
"""
DATABASE_SIZE = "SELECT pg_database_size(current_database()) AS bytes"
DATA_DIRECTORY = "SELECT current_setting('data_directory', true) AS path"
REPLICATION = """
SELECT application_name, extract(epoch FROM replay_lag) * 1000 AS lag_ms
  FROM pg_stat_replication
"""
REPLICA_LAG = """
SELECT CASE WHEN pg_is_in_recovery()
            THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000 END AS lag_ms
"""
STATEMENTS_HELP = (
    "pg_stat_statements is not installed in this database: add pg_stat_statements to "
    "shared_preload_libraries in postgresql.conf, restart PostgreSQL, then run "
    "CREATE EXTENSION pg_stat_statements"
)


@dataclass
class DatabaseMetrics:
    collected_at: datetime
    connections: dict[str, int] = field(default_factory=dict)  # every session, by state
    app_connections: dict[str, int] = field(default_factory=dict)  # the application's
    top_queries: list[dict[str, Any]] = field(default_factory=list)
    top_queries_note: str | None = None
    tables: list[dict[str, Any]] = field(default_factory=list)
    index_usage: list[dict[str, Any]] = field(default_factory=list)
    cache_hit_ratio: float | None = None
    pool: dict[str, int] = field(default_factory=dict)
    pool_utilisation: float = 0.0  # connections in use / max
    lock_waits: list[dict[str, Any]] = field(default_factory=list)
    long_queries: list[dict[str, Any]] = field(default_factory=list)
    database_bytes: int | None = None
    disk_bytes: int | None = None  # size of the volume, when known
    disk_usage: float | None = None  # database_bytes / disk_bytes, or the volume's own usage
    replication_lag_ms: float | None = None
    replica_lags: dict[str, float | None] = field(default_factory=dict)  # DATABASE_REPLICA_URLS
    redis: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Monitor:
    """Collects metrics of `pool_db`'s pool through `db`, its own small pool, so that it
    still works, and reports, when the application's pool is saturated."""

    def __init__(
        self,
        db: Database,
        link: RedisLink,
        *,
        pool_db: Database,
        disk_bytes: int | None = None,
        reads: ReadRouter | None = None,
    ) -> None:
        self.db = db
        self.pool_db = pool_db
        self.link = link
        self.disk_bytes = disk_bytes
        self.reads = reads

    async def collect(self) -> DatabaseMetrics:
        m = DatabaseMetrics(collected_at=datetime.now(UTC))
        await self._pool(m)
        if self.db is not self.pool_db:
            await self.db.pool.open(wait=False)
        parts = {
            "connections": self._connections,
            "top_queries": self._top_queries,
            "tables": self._tables,
            "cache": self._cache,
            "locks": self._locks,
            "disk": self._disk,
            "replication": self._replication,
            "redis": self._redis,
        }
        results = await asyncio.gather(
            *(part(m) for part in parts.values()), return_exceptions=True
        )
        for name, result in zip(parts, results, strict=True):
            if isinstance(result, BaseException):
                m.errors[name] = str(result) or type(result).__name__
        return m

    async def _connections(self, m: DatabaseMetrics) -> None:
        for r in await self.db.query(CONNECTIONS):
            m.connections[r["state"]] = m.connections.get(r["state"], 0) + r["n"]
            if r["application_name"] == APPLICATION:
                m.app_connections[r["state"]] = r["n"]

    async def _top_queries(self, m: DatabaseMetrics) -> None:
        if await self.db.query_one(HAS_STATEMENTS) is None:
            m.top_queries_note = STATEMENTS_HELP
            return
        m.top_queries = [dict(r) for r in await self.db.query(TOP_QUERIES)]

    async def _tables(self, m: DatabaseMetrics) -> None:
        tables = {r["table_name"]: dict(r) for r in await self.db.query(TABLES)}
        if await self.db.query_one(HAS_TIMESCALE) is not None:
            tables.update({r["table_name"]: dict(r) for r in await self.db.query(HYPERTABLE_SIZES)})
        m.tables = sorted(
            tables.values(), key=lambda t: t["table_bytes"] + t["index_bytes"], reverse=True
        )
        m.index_usage = [dict(r) for r in await self.db.query(INDEX_USAGE)]

    async def _cache(self, m: DatabaseMetrics) -> None:
        m.cache_hit_ratio = await self.db.query_value(CACHE_HIT)

    async def _pool(self, m: DatabaseMetrics) -> None:
        m.pool = self.pool_db.stats()
        in_use = m.pool["size"] - m.pool["available"]
        m.pool_utilisation = (in_use + m.pool["waiting"]) / max(m.pool["max"], 1)

    async def _locks(self, m: DatabaseMetrics) -> None:
        m.lock_waits = [dict(r) for r in await self.db.query(LOCK_WAITS)]
        m.long_queries = [dict(r) for r in await self.db.query(LONG_QUERIES)]

    async def _disk(self, m: DatabaseMetrics) -> None:
        m.database_bytes = int(await self.db.query_value(DATABASE_SIZE))
        if self.disk_bytes:
            m.disk_bytes = self.disk_bytes
            m.disk_usage = m.database_bytes / self.disk_bytes
            return
        path = await self.db.query_value(DATA_DIRECTORY)  # readable by superusers only
        if path:
            try:
                usage = shutil.disk_usage(path)  # only when the server is on this machine
            except OSError:
                return
            m.disk_bytes = usage.total
            m.disk_usage = usage.used / usage.total

    async def _replication(self, m: DatabaseMetrics) -> None:
        lags = [r["lag_ms"] for r in await self.db.query(REPLICATION) if r["lag_ms"] is not None]
        own = await self.db.query_value(REPLICA_LAG)
        values = [float(v) for v in [*lags, own] if v is not None]
        m.replication_lag_ms = max(values) if values else None
        if self.reads is not None and self.reads.replicas:
            await self.reads.probe()
            m.replica_lags = self.reads.lags()

    async def _redis(self, m: DatabaseMetrics) -> None:
        if self.link.client is None:
            m.redis = {"configured": False}
            return
        info = await self.link.info()
        hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
        m.redis = {
            "configured": True,
            "used_memory_bytes": int(info.get("used_memory", 0)),
            "connected_clients": int(info.get("connected_clients", 0)),
            "keyspace_hits": hits,
            "keyspace_misses": misses,
            "hit_rate": hits / (hits + misses) if hits + misses else None,
        }
        if "cluster_masters" in info:
            m.redis["cluster_masters"] = int(info["cluster_masters"])
