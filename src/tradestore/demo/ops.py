"""Demo steps: real-time services, operations (config, logs, metrics, alerts), lifecycle."""

from __future__ import annotations

import logging
import uuid

from rich.table import Table

from tradestore.cli.common import console
from tradestore.demo.trading import demo_strategy
from tradestore.logs import LogFilter, log_context
from tradestore.ops.alerts import AlertThresholds, evaluate
from tradestore.store import TradeStore


async def step_realtime(store: TradeStore) -> None:
    if not store.redis.configured:
        backlog = await store.events.backlog()
        console.print(
            "Redis is not configured, so rate limits fall back to per-process "
            "limiters and sessions, state and live events are off; "
            f"{backlog['pending']} event(s) wait safely in the outbox. "
            "Set REDIS_URL to see them relayed."
        )
        limit = store.rate_limiter.token_bucket("demo:exchange", rate=5, burst=2)
        decisions = [await limit.try_acquire() for _ in range(3)]
        console.print(
            "in-process token bucket (5/s, burst 2): "
            + ", ".join("allowed" if d.allowed else f"wait {d.wait_s:.2f}s" for d in decisions)
        )
        return
    strategy = await demo_strategy(store)
    limit = store.rate_limiter.token_bucket("demo:exchange", rate=5, burst=2)
    decisions = [await limit.try_acquire() for _ in range(3)]
    console.print(
        "shared token bucket (5/s, burst 2): "
        + ", ".join("allowed" if d.allowed else f"wait {d.wait_s:.2f}s" for d in decisions)
    )
    token, session = await store.sessions.create("demo-user", {"role": "operator"}, ttl_s=60)
    console.print(f"session {session.id[:12]}… created (only the token's hash is stored)")
    await store.sessions.revoke(token)
    version = await store.strategy_state.set(
        strategy.id, "demo:cursor", {"last": str(uuid.uuid4())}
    )
    console.print(
        f"strategy state written at version {version}; snapshot to PostgreSQL: "
        f"{await store.strategy_state.snapshot(strategy.id)} key(s)"
    )
    while await store.events.publish_pending() > 0:  # the background relay may be first
        pass
    client = store.redis.client
    assert client is not None
    length = await client.xlen(store.events.stream)
    backlog = await store.events.backlog()
    console.print(
        f"events: {length} in the Redis stream, {backlog['pending']} waiting in the "
        "outbox (every order, trade, strategy and config change)"
    )


async def step_operations(store: TradeStore) -> None:
    await store.config.set(
        "risk.max_position_usd",
        25_000,
        category="risk",
        description="largest position a strategy may hold",
        changed_by="demo",
    )
    console.print(
        f"config risk.max_position_usd = {await store.config.get('risk.max_position_usd')}"
    )
    handler = await store.log_handler()
    logger = logging.getLogger("tradestore.demo")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    strategy = await demo_strategy(store)
    with log_context(strategy_id=strategy.id, category="STRATEGY"):
        logger.info("demo strategy evaluated", extra={"signal": "hold"})
        logger.warning("spread wider than usual", extra={"spread_bps": 14})
    await handler.aclose()
    logger.removeHandler(handler)
    rows = await store.search_logs(LogFilter(strategy_id=strategy.id), limit=2)
    console.print(
        f"system_logs: {len(rows)} recent record(s) for the demo strategy, newest: "
        f"{rows[0]['level']} {rows[0]['message']!r}"
    )
    metrics = await store.monitor.collect()
    alerts = evaluate(metrics, AlertThresholds.from_settings(store.settings))
    console.print(
        f"database: {sum(metrics.connections.values())} connection(s), cache hit "
        f"ratio {metrics.cache_hit_ratio or 0:.1%}, pool {metrics.pool_utilisation:.0%}"
        f" used; alerts: {', '.join(a.name for a in alerts) or 'none'}"
    )


async def step_lifecycle(store: TradeStore) -> None:
    rollups = store.rollups
    result = await rollups.refresh()
    console.print(f"rollups refreshed: {result.days} day(s) of 1m data into 5m…1d")
    table = Table("task", "action", "target", "detail", title="maintenance plan")
    for action in await store.maintenance.plan():
        table.add_row(action.task, action.action, action.target, action.detail)
    console.print(table)
