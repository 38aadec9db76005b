"""Prometheus exposition: `/metrics` (metric naming conventions: tradestore_ prefix, base
units, _bytes / _seconds / _ratio / _total suffixes) and `/health` (200 or 503).

Served by prometheus-client's own WSGI app and threading server; the metrics are
collected fresh on each scrape, on the store's event loop (the server's thread hands the
collection over and waits for it, at most SCRAPE_TIMEOUT_S)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from tradestore.db.database import Database
from tradestore.health import Health
from tradestore.ops.alerts import Alert, AlertThresholds, evaluate
from tradestore.ops.app_metrics import AppMetrics, collect_app_metrics
from tradestore.ops.monitoring import DatabaseMetrics, Monitor

if TYPE_CHECKING:
    from collections.abc import Iterator

SCRAPE_TIMEOUT_S = 20.0


class _Snapshot(Collector):
    def __init__(
        self, m: DatabaseMetrics, app: AppMetrics, health: Health, alerts: list[Alert]
    ) -> None:
        self.m, self.app, self.health, self.alerts = m, app, health, alerts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        m = self.m
        yield _gauge("tradestore_up", "1 when PostgreSQL answers", self.health.postgresql.ok)
        yield _gauge("tradestore_redis_up", "1 when Redis answers", self.health.redis.ok)
        conns = GaugeMetricFamily(
            "tradestore_pg_connections", "Sessions of the database by state", labels=["state"]
        )
        for state, n in m.connections.items():
            conns.add_metric([state], n)
        yield conns
        app_conns = GaugeMetricFamily(
            "tradestore_app_connections",
            "Sessions of tradestore's own pools in every process (the monitor's pool excluded)",
            labels=["state"],
        )
        for state, n in m.app_connections.items():
            app_conns.add_metric([state], n)
        yield app_conns
        yield from _app_families(self.app)
        yield _gauge(
            "tradestore_pool_utilisation_ratio",
            "This process's pool: connections in use / max",
            m.pool_utilisation,
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
        lags = GaugeMetricFamily(
            "tradestore_replica_lag_seconds",
            "Replay lag of each configured replica (absent when unreachable or promoted)",
            labels=["replica"],
        )
        up = GaugeMetricFamily(
            "tradestore_replica_up", "1 when a configured replica serves reads", labels=["replica"]
        )
        for name, lag in m.replica_lags.items():
            up.add_metric([name], 0 if lag is None else 1)
            if lag is not None:
                lags.add_metric([name], lag)
        yield lags
        yield up
        yield _gauge(
            "tradestore_pg_lock_waiting_sessions", "Sessions waiting on a lock", len(m.lock_waits)
        )
        longest = max((float(q["running_ms"]) for q in m.long_queries), default=0.0)
        yield _gauge("tradestore_pg_longest_query_seconds", "Longest running query", longest / 1000)
        tables = GaugeMetricFamily(
            "tradestore_pg_table_size_bytes", "Table size", labels=["table", "kind"]
        )
        rows = GaugeMetricFamily(
            "tradestore_pg_table_rows_estimate",
            "Planner's estimate of rows (exact market data counts: tradestore_market_data_rows)",
            labels=["table"],
        )
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
    """What the exporter reads: the monitor, a database for the application metrics,
    the health check, the alert thresholds."""

    monitor: Monitor
    db: Database
    health: Callable[[], Coroutine[Any, Any, Health]]
    thresholds: AlertThresholds


class _Fresh(Collector):
    """Collects on the store's loop at each scrape (called from the server's thread)."""

    def __init__(self, sources: Sources, loop: asyncio.AbstractEventLoop) -> None:
        self.sources, self.loop = sources, loop

    def collect(self) -> Iterator[GaugeMetricFamily]:
        metrics, app, health = asyncio.run_coroutine_threadsafe(self._gather(), self.loop).result(
            SCRAPE_TIMEOUT_S
        )
        alerts = evaluate(metrics, self.sources.thresholds)
        yield from _Snapshot(metrics, app, health, alerts).collect()

    async def _gather(self) -> tuple[DatabaseMetrics, AppMetrics, Health]:
        metrics = await self.sources.monitor.collect()
        return metrics, await collect_app_metrics(self.sources.db), await self.sources.health()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def wsgi_app(sources: Sources, loop: asyncio.AbstractEventLoop) -> Callable[..., Iterable[bytes]]:
    """prometheus-client's WSGI app at /metrics, and /health beside it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fresh(sources, loop))
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/health":
            health = asyncio.run_coroutine_threadsafe(sources.health(), loop).result(
                SCRAPE_TIMEOUT_S
            )
            status = "200 OK" if health.ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(health.to_dict()).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /health\n"]

    return app


async def serve(sources: Sources, host: str, port: int) -> None:
    """Serve /metrics and /health until cancelled (the server runs in a thread; the
    collection on this loop)."""
    server = make_server(
        host, port, wsgi_app(sources, asyncio.get_running_loop()), ThreadingWSGIServer, _Quiet
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    try:
        await asyncio.Event().wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _app_families(app: AppMetrics) -> Iterator[GaugeMetricFamily]:
    age = GaugeMetricFamily(
        "tradestore_candle_age_seconds",
        "Seconds since the latest stored candle of a series closed (data freshness)",
        labels=["venue", "symbol", "timeframe"],
    )
    rows = GaugeMetricFamily(
        "tradestore_market_data_rows",
        "Stored candles of a series (the catalog: exact)",
        labels=["venue", "symbol", "timeframe"],
    )
    for s in app.series:
        age.add_metric([s.venue, s.symbol, s.timeframe], s.age_s)
        rows.add_metric([s.venue, s.symbol, s.timeframe], s.rows)
    yield age
    yield rows
    yield _gauge(
        "tradestore_outbox_pending", "Events committed, not yet relayed", app.outbox_pending
    )
    yield _gauge(
        "tradestore_outbox_lag_seconds",
        "Age of the oldest event not yet relayed (the relay's lag; 0 when none waits)",
        app.outbox_oldest_age_s,
    )
    orders = GaugeMetricFamily("tradestore_orders", "Orders by status", labels=["status"])
    for status, n in app.orders_by_status.items():
        orders.add_metric([status], n)
    yield orders
    yield _gauge("tradestore_open_trades", "Open or partially filled trades", app.open_trades)
    pnl = GaugeMetricFamily(
        "tradestore_realised_pnl", "Realised P&L of closed trades", labels=["strategy"]
    )
    closed = GaugeMetricFamily("tradestore_closed_trades", "Closed trades", labels=["strategy"])
    for name, value in app.realised_pnl.items():
        pnl.add_metric([name], value)
        closed.add_metric([name], app.closed_trades.get(name, 0))
    yield pnl
    yield closed
    failed = GaugeMetricFamily(
        "tradestore_metrics_part_failed",
        "1 per part of the collection that failed",
        labels=["part"],
    )
    for part in app.errors:
        failed.add_metric([part], 1)
    yield failed
