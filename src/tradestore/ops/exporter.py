"""Prometheus exposition: `/metrics` (metric naming conventions: tradestore_ prefix, base
units, _bytes / _seconds / _ratio / _total suffixes) and `/health` (200 or 503).

A deliberately small asyncio HTTP server: two read-only endpoints need no framework.
Metrics are collected fresh on each scrape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tradestore.health import Health
from tradestore.ops.alerts import Alert, AlertThresholds, evaluate
from tradestore.ops.monitoring import DatabaseMetrics, Monitor

if TYPE_CHECKING:
    from collections.abc import Iterator

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot(Collector):
    def __init__(self, m: DatabaseMetrics, health: Health, alerts: list[Alert]) -> None:
        self.m, self.health, self.alerts = m, health, alerts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        m = self.m
        yield _gauge("tradestore_up", "1 when PostgreSQL answers", self.health.postgresql.ok)
        yield _gauge("tradestore_redis_up", "1 when Redis answers", self.health.redis.ok)
        conns = GaugeMetricFamily(
            "tradestore_pg_connections", "Sessions by state", labels=["state"]
        )
        for state, n in m.connections.items():
            conns.add_metric([state], n)
        yield conns
        yield _gauge(
            "tradestore_pool_utilisation_ratio", "Pool connections in use / max", m.pool_utilisation
        )
        yield _gauge(
            "tradestore_pool_waiting", "Requests waiting for a connection", m.pool.get("waiting", 0)
        )
        if m.cache_hit_ratio is not None:
            yield _gauge(
                "tradestore_pg_cache_hit_ratio", "Buffer cache hits / reads", m.cache_hit_ratio
            )
        if m.database_bytes is not None:
            yield _gauge("tradestore_pg_database_size_bytes", "Database size", m.database_bytes)
        if m.disk_usage is not None:
            yield _gauge("tradestore_disk_usage_ratio", "Database volume usage", m.disk_usage)
        if m.replication_lag_ms is not None:
            yield _gauge(
                "tradestore_pg_replication_lag_seconds",
                "Replication lag",
                m.replication_lag_ms / 1000,
            )
        yield _gauge(
            "tradestore_pg_lock_waiting_sessions", "Sessions waiting on a lock", len(m.lock_waits)
        )
        longest = max((float(q["running_ms"]) for q in m.long_queries), default=0.0)
        yield _gauge("tradestore_pg_longest_query_seconds", "Longest running query", longest / 1000)
        tables = GaugeMetricFamily(
            "tradestore_pg_table_size_bytes", "Table size", labels=["table", "kind"]
        )
        rows = GaugeMetricFamily("tradestore_pg_table_rows", "Estimated rows", labels=["table"])
        for t in m.tables:
            tables.add_metric([t["table_name"], "heap"], t["table_bytes"])
            tables.add_metric([t["table_name"], "index"], t["index_bytes"])
            rows.add_metric([t["table_name"]], t["rows_estimate"])
        yield tables
        yield rows
        if m.redis.get("configured"):
            yield _gauge(
                "tradestore_redis_memory_bytes", "Redis used memory", m.redis["used_memory_bytes"]
            )
            yield _gauge(
                "tradestore_redis_connected_clients", "Redis clients", m.redis["connected_clients"]
            )
            if m.redis["hit_rate"] is not None:
                yield _gauge(
                    "tradestore_redis_hit_ratio", "Redis keyspace hit rate", m.redis["hit_rate"]
                )
        active = GaugeMetricFamily(
            "tradestore_alert_active", "1 per active alert", labels=["alert", "severity"]
        )
        for alert in self.alerts:
            active.add_metric([alert.name, alert.severity], 1)
        yield active


def _gauge(name: str, doc: str, value: float | bool | int) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


@dataclass(frozen=True)
class Sources:
    """What the exporter reads: the monitor, the health check, the alert thresholds."""

    monitor: Monitor
    health: Callable[[], Awaitable[Health]]
    thresholds: AlertThresholds


async def render_metrics(sources: Sources) -> bytes:
    metrics = await sources.monitor.collect()
    registry = CollectorRegistry()
    registry.register(
        _Snapshot(metrics, await sources.health(), evaluate(metrics, sources.thresholds))
    )
    return generate_latest(registry)


async def serve(sources: Sources, host: str, port: int) -> None:
    """Serve /metrics and /health until cancelled."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            status, ctype, body = await _respond(sources, path)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    async with server:
        await server.serve_forever()


async def _respond(sources: Sources, path: str) -> tuple[str, str, bytes]:
    if path == "/metrics":
        return "200 OK", CONTENT_TYPE, await render_metrics(sources)
    if path == "/health":
        health = await sources.health()
        status = "200 OK" if health.ok else "503 Service Unavailable"
        return status, "application/json", json.dumps(health.to_dict()).encode()
    return "404 Not Found", "text/plain", b"not found: try /metrics or /health\n"
