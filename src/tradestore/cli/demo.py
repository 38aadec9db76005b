"""`tradestore demo`: the whole store, end to end, on the embedded default.

Each part of tradestore adds a step here; a step gets the open, migrated store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.panel import Panel
from rich.table import Table

from tradestore.cli.common import console, open_store, run
from tradestore.store import Health, TradeStore

DemoStep = Callable[[TradeStore], Awaitable[None]]


def health_table(health: Health) -> Table:
    table = Table("component", "ok", "latency", "detail", title="health")
    for name, part in (("postgresql", health.postgresql), ("redis", health.redis)):
        latency = f"{part.latency_ms:.2f} ms" if part.latency_ms is not None else "-"
        table.add_row(name, "[green]yes[/]" if part.ok else "[red]no[/]", latency, part.detail)
    return table


async def step_schema(store: TradeStore) -> None:
    result = await store.migrate()
    applied = ", ".join(result.applied) or "nothing to do"
    console.print(f"migrations applied: {applied}")
    status = await store.migration_status()
    console.print(
        f"schema: {len(status.applied)} migrations applied, {len(status.pending)} pending; "
        f"time-series mode: {status.mode.value if status.mode else '?'}"
    )
    console.print(health_table(await store.health()))


def _steps() -> list[tuple[str, DemoStep]]:
    from tradestore.cli.demo_analytics import step_analytics
    from tradestore.cli.demo_market import step_market_data
    from tradestore.cli.demo_ops import step_lifecycle, step_operations, step_realtime
    from tradestore.cli.demo_trading import step_trading

    return [
        ("schema and health", step_schema),
        ("strategies, orders and trades", step_trading),
        ("market data", step_market_data),
        ("performance analytics", step_analytics),
        ("real-time services", step_realtime),
        ("operations: config, logs, metrics, alerts", step_operations),
        ("data lifecycle", step_lifecycle),
    ]


def demo() -> None:
    """Open the store (embedded PostgreSQL unless DATABASE_URL is set), migrate, show it working."""

    async def main() -> None:
        async with open_store() as store:
            where = store.embedded_dir or store.database_url
            kind = "embedded PostgreSQL in" if store.embedded_dir else "PostgreSQL at"
            console.print(Panel.fit(f"tradestore demo — {kind} {where}"))
            for title, step in _steps():
                console.rule(title)
                await step(store)
        console.print("[green]demo finished[/]")

    run(main)
