"""`tradestore status | metrics serve | logs | config`: operating the store."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group
from rich.table import Table

from tradestore.cli.common import console, open_store, run
from tradestore.cli.formatting import health_table, parse_when, when
from tradestore.cli.output import Format, format_option, limit_option, print_line, print_rows
from tradestore.errors import NotFound, TradeStoreError
from tradestore.health import Health

if TYPE_CHECKING:
    from tradestore.ops.alerts import Alert
    from tradestore.ops.monitoring import DatabaseMetrics
    from tradestore.store import TradeStore

metrics_app = typer.Typer(help="Metrics: Prometheus exporter.", no_args_is_help=True)
logs_app = typer.Typer(help="system_logs.", no_args_is_help=True)
config_app = typer.Typer(help="system_config.", no_args_is_help=True)


async def _snapshot(store: TradeStore) -> tuple[Health, DatabaseMetrics, list[Alert], str]:
    from tradestore.ops.alerts import AlertThresholds, evaluate

    metrics = await store.monitor.collect()  # first: its pool figures exclude our own queries
    health = await store.health()
    return (
        health,
        metrics,
        evaluate(metrics, AlertThresholds.from_settings(store.settings)),
        await _outbox(store),
    )


async def _outbox(store: TradeStore) -> str:
    """The relay's backlog: events committed but not yet in Redis (any process relays)."""
    try:
        backlog = await store.events.backlog()
    except TradeStoreError as exc:
        return f"unknown ({exc})"
    if not backlog["pending"]:
        return "0 pending (all relayed)"
    age = datetime.now(UTC) - backlog["oldest"]
    return f"{backlog['pending']} pending, oldest {age.total_seconds():,.0f} s ago"


def _dashboard(health: Health, m: DatabaseMetrics, alerts: list[Alert], outbox: str) -> Group:
    summary = Table("metric", "value", title=f"database metrics at {when(m.collected_at)}")
    summary.add_row("connections", ", ".join(f"{k}: {v}" for k, v in m.connections.items()))
    summary.add_row("pool", f"{m.pool_utilisation:.0%} used ({m.pool})")
    summary.add_row(
        "cache hit ratio", "-" if m.cache_hit_ratio is None else f"{m.cache_hit_ratio:.2%}"
    )
    summary.add_row(
        "database size", "-" if m.database_bytes is None else f"{m.database_bytes / 1e6:,.1f} MB"
    )
    summary.add_row(
        "disk",
        "unknown (set TRADESTORE_DB_DISK_BYTES)"
        if m.disk_usage is None
        else f"{m.disk_usage:.0%} used",
    )
    summary.add_row(
        "replication lag",
        "no replicas" if m.replication_lag_ms is None else f"{m.replication_lag_ms / 1000:,.1f} s",
    )
    if m.replica_lags:
        summary.add_row(
            "read replicas",
            ", ".join(
                f"{name}: " + ("unreachable or promoted" if lag is None else f"{lag:,.1f} s")
                for name, lag in m.replica_lags.items()
            ),
        )
    summary.add_row("lock waits", str(len(m.lock_waits)))
    summary.add_row("event outbox", outbox)
    summary.add_row("redis", json.dumps(m.redis, default=str))
    summary.add_row("top queries", m.top_queries_note or f"{len(m.top_queries)} shown below")
    for part, error in m.errors.items():
        summary.add_row(f"[red]{part} failed[/]", error)
    tables = Table("table", "heap MB", "index MB", "rows (est.)", title="largest tables")
    for t in m.tables[:8]:
        tables.add_row(
            t["table_name"],
            f"{t['table_bytes'] / 1e6:,.2f}",
            f"{t['index_bytes'] / 1e6:,.2f}",
            f"{t['rows_estimate']:,}",
        )
    alert_table = Table("alert", "severity", "value", "threshold", "message", title="alerts")
    for a in alerts:
        alert_table.add_row(a.name, a.severity, f"{a.value:,.3f}", f"{a.threshold:,.3f}", a.message)
    if not alerts:
        alert_table.add_row("none", "", "", "", "all thresholds respected")
    parts: list[Any] = [health_table(health), summary, tables, alert_table]
    if m.top_queries:
        top = Table("calls", "total ms", "mean ms", "query", title="top queries")
        for q in m.top_queries[:5]:
            top.add_row(str(q["calls"]), str(q["total_ms"]), str(q["mean_ms"]), q["query"])
        parts.append(top)
    return Group(*parts)


def status(
    watch: bool = typer.Option(False, "--watch", help="Refresh as a live dashboard."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON once, for scripts."),
    interval_s: float = typer.Option(2.0, "--interval", help="Refresh interval with --watch."),
) -> None:
    """Health, database metrics and alerts (exit 1 when PostgreSQL is down)."""

    async def main() -> bool:
        async with open_store() as store:
            health, metrics, alerts, outbox = await _snapshot(store)
            if as_json:
                console.print_json(
                    json.dumps(
                        {
                            "health": health.to_dict(),
                            "metrics": metrics.to_dict(),
                            "alerts": [a.__dict__ for a in alerts],
                            "event_outbox": outbox,
                        },
                        default=str,
                    )
                )
                return health.ok
            if not watch:
                console.print(_dashboard(health, metrics, alerts, outbox))
                return health.ok
            from rich.live import Live

            with Live(
                _dashboard(health, metrics, alerts, outbox), console=console, refresh_per_second=4
            ) as live:
                while True:
                    await asyncio.sleep(interval_s)
                    live.update(_dashboard(*await _snapshot(store)))

    if not run(main, until_interrupted=watch):
        raise typer.Exit(1)


@metrics_app.command("serve")
def serve(
    port: int = typer.Option(9187, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
) -> None:
    """Serve Prometheus /metrics and /health (200 or 503) until interrupted."""
    from tradestore.ops.alerts import AlertThresholds
    from tradestore.ops.exporter import Sources
    from tradestore.ops.exporter import serve as serve_http

    async def main() -> None:
        async with open_store(relay=True) as store:
            console.print(f"serving http://{host}:{port}/metrics and /health (Ctrl-C to stop)")
            thresholds = AlertThresholds.from_settings(store.settings)
            sources = Sources(store.monitor, store.db, store.health, thresholds)
            await serve_http(sources, host, port)

    run(main, until_interrupted=True)


def _log_record(r: Any) -> dict[str, Any]:
    context = {
        k: str(r[k]) for k in ("strategy_id", "trade_id", "order_id", "user_id") if r[k] is not None
    }
    return {
        "time": r["timestamp"],
        "level": r["level"],
        "category": r["category"],
        "message": r["message"],
        "context": context or None,
        "details": r["details"],
        "id": r["id"],
    }


def _log_line(r: Any) -> str:
    return f"{when(r['timestamp'])} {r['level']:5} {r['category']}: {r['message']}"


LOG_COLUMNS = ("time", "level", "category", "message", "context")


@logs_app.command("search")
def logs_search(
    level: str | None = typer.Option(None, help="This level and above (case-insensitive)."),
    category: str | None = typer.Option(None),
    strategy: str | None = typer.Option(None, help="Strategy name."),
    since: str | None = typer.Option(None, help="From (ISO, now, 7d, yesterday...)."),
    until: str | None = typer.Option(None, help="Up to (same forms)."),
    text: str | None = typer.Option(None, help="Text in the message."),
    limit: int = limit_option(100),
    fmt: Format = format_option(),
) -> None:
    """Search system_logs (the newest `--limit` records, printed oldest first)."""
    from tradestore.logs.search import LogFilter

    async def main() -> None:
        async with open_store() as store:
            sid = None if strategy is None else (await store.strategies.get_by_name(strategy)).id
            rows = await store.search_logs(
                LogFilter(
                    level=level,
                    category=category,
                    strategy_id=sid,
                    since=parse_when(since, option="--since"),
                    until=parse_when(until, option="--until"),
                    text=text,
                ),
                limit=limit,
            )
        records = [_log_record(r) for r in reversed(rows)]
        columns = LOG_COLUMNS if fmt is Format.TABLE else None
        print_rows(records, fmt, title=f"{len(rows)} log record(s)", columns=columns)

    run(main)


@logs_app.command("tail")
def logs_tail(
    n: int = typer.Option(20, "-n", min=0, max=10_000, help="How many recent records first."),
    level: str | None = typer.Option(None, help="This level and above (case-insensitive)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new records."),
    fmt: Format = format_option(),
) -> None:
    """The most recent records, oldest first; with --follow, new ones as they arrive."""
    from tradestore.logs.search import LogFilter

    async def main() -> None:
        async with open_store() as store:
            rows = await store.search_logs(LogFilter(level=level), limit=n) if n else []
            for r in reversed(rows):
                print_line(_log_record(r), fmt, _log_line(r))
            last = rows[0]["id"] if rows else 0
            while follow:
                await asyncio.sleep(1.0)
                fresh = [
                    r
                    for r in await store.search_logs(LogFilter(level=level), limit=500)
                    if r["id"] > last
                ]
                if fresh:
                    last = max(r["id"] for r in fresh)
                    for r in reversed(fresh):
                        print_line(_log_record(r), fmt, _log_line(r))

    run(main, until_interrupted=follow)


@config_app.command("get")
def config_get(
    key: str, reveal: bool = typer.Option(False, help="Show a sensitive value in clear.")
) -> None:
    """One configuration value (sensitive values redacted unless --reveal)."""

    async def main() -> None:
        async with open_store() as store:
            entry = await store.config.entry(key, reveal=reveal)
        if entry is None:
            raise NotFound(f"no configuration value {key!r}")
        console.print(json.dumps(entry.value), highlight=False)

    run(main)


@config_app.command("set")
def config_set(
    key: str,
    value: str = typer.Argument(..., help='A JSON value: 5, true, "text", {...}, [...].'),
    data_type: str | None = typer.Option(
        None, "--type", help="string|number|boolean|object|array (default: from the value)."
    ),
    category: str = typer.Option("general"),
    description: str | None = typer.Option(None),
    sensitive: bool = typer.Option(False, help="Encrypt at rest (needs TRADESTORE_CONFIG_KEY)."),
    by: str | None = typer.Option(None, help="Who is changing it."),
) -> None:
    """Set a configuration value (typed; history kept)."""
    from tradestore.config.store import REDACTED

    async def main() -> None:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value  # a bare word is a string
        async with open_store() as store:
            entry = await store.config.set(
                key,
                parsed,
                data_type=data_type,
                category=category,
                description=description,
                sensitive=sensitive or None,
                changed_by=by,
            )
        shown = REDACTED if entry.is_sensitive else json.dumps(entry.value)
        console.print(
            f"{entry.key} = {shown} ({entry.data_type}, {entry.category})", highlight=False
        )

    run(main)


@config_app.command("list")
def config_list(category: str | None = typer.Option(None), fmt: Format = format_option()) -> None:
    """Every configuration value, sensitive ones redacted."""
    from tradestore.config.store import REDACTED

    async def main() -> None:
        async with open_store() as store:
            entries = await store.config.entries(category)
        rows = [
            {
                "key": e.key,
                "value": REDACTED if e.is_sensitive else e.value,
                "type": e.data_type,
                "category": e.category,
                "updated": e.updated_at,
                "by": e.updated_by,
            }
            for e in entries
        ]
        print_rows(rows, fmt, title="configuration")

    run(main)
