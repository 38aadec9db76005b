"""Every hot query can be served by an index: its plan, with sequential scans disabled
(so the tiny test tables do not make the planner prefer them), uses the named index and
scans no table whole. A missing or unusable index shows up as a Seq Scan. On
partitioned tables each partition's index is named after its columns
(`system_logs_p20240101_trade_id_idx`), while TimescaleDB prefixes the parent's index
name with the chunk's (`_hyper_3_7_chunk_idx_system_logs_trade`): either is accepted."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql

from tests.trading.helpers import new_strategy
from tradestore import TradeStore
from tradestore.analytics.portfolio import EQUITY, _owned
from tradestore.logs.search import SEARCH_SQL
from tradestore.ops.archive import MOVE_BATCH
from tradestore.ops.outbox import PRUNE_BATCH
from tradestore.realtime.bus import PENDING, REPUBLISH_SINCE

NOW = datetime.now(UTC)


async def plan(store: TradeStore, query: Any, params: Any) -> str:
    async with store.db.transaction() as conn:
        await conn.execute("SET LOCAL enable_seqscan = off")
        if isinstance(query, str):
            query = sql.SQL(query)  # type: ignore[arg-type]
        cur = await conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params)
        row = await cur.fetchone()
    assert row is not None
    return json.dumps(next(iter(row.values())))


def nodes(text: str) -> list[str]:
    return [n["Node Type"] for n in _walk(json.loads(text)[0]["Plan"])]


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *[n for child in node.get("Plans", []) for n in _walk(child)]]


CASES = [
    (
        "log search, all levels",
        SEARCH_SQL,
        {
            "levels": None,  # what search_logs passes for every level
            "category": None,
            "strategy_id": None,
            "since": NOW - timedelta(days=1),
            "until": NOW,
            "text": None,
            "limit": 100,
        },
        "idx_system_logs_time|timestamp_id_idx",
    ),
    (
        "log search by strategy",
        SEARCH_SQL,
        {
            "levels": ["WARN", "ERROR", "FATAL"],
            "category": None,
            "strategy_id": uuid.uuid4(),
            "since": NOW - timedelta(days=1),
            "until": NOW,
            "text": None,
            "limit": 100,
        },
        "idx_system_logs_|system_logs_p",
    ),
    (
        "logs of a deleted trade (FK)",
        "UPDATE system_logs SET trade_id = NULL WHERE trade_id = %s",
        (uuid.uuid4(),),
        "idx_system_logs_trade|trade_id_idx",
    ),
    (
        "logs of a deleted order (FK)",
        "UPDATE system_logs SET order_id = NULL WHERE order_id = %s",
        (uuid.uuid4(),),
        "idx_system_logs_order|order_id_idx",
    ),
    (
        "equity curve of a strategy",
        None,
        None,
        "idx_portfolio_snapshots_strategy_time|strategy_id_snapshot_time_idx",
    ),
    ("archive batch", MOVE_BATCH, {"cutoff": NOW, "batch": 1000}, "idx_trades_finished_at"),
    ("relay batch", PENDING, (500,), "idx_event_outbox_unpublished"),
    (
        "outbox prune",
        PRUNE_BATCH,
        {"keep": timedelta(days=7), "batch": 10_000},
        "idx_event_outbox_published",
    ),
    ("relay again after a Redis loss", REPUBLISH_SINCE, (NOW,), "idx_event_outbox_published"),
]


@pytest.mark.parametrize(("name", "query", "params", "index"), CASES, ids=[c[0] for c in CASES])
async def test_hot_query_uses_its_index(
    store: TradeStore, name: str, query: Any, params: Any, index: str
) -> None:
    if query is None:  # the equity curve: composed per owner, on a table worth indexing
        await _many_snapshots(store)
        query = _owned(EQUITY, uuid.uuid4())
        params = {"strategy_id": uuid.uuid4(), "start": NOW - timedelta(days=90), "end": NOW}
    await _a_log_row(store)  # TimescaleDB plans only chunks that exist
    text = await plan(store, query, params)
    assert "Seq Scan" not in nodes(text), f"{name}: {text}"
    assert any(fragment in text for fragment in index.split("|")), f"{name}: {index}: {text}"


async def _many_snapshots(store: TradeStore) -> None:
    """Snapshots of 20 strategies over the last days, analysed: a strategy's equity
    curve is then a small part of the table, which its index should serve."""
    strategies = [(await new_strategy(store)).id for _ in range(20)]
    await store.portfolio.record({"total_value": "1", "cash_balance": "1"})
    now = datetime.now(UTC)  # the rows reach 500 minutes back: over a month's end, too
    await store.partitions.ensure("portfolio_snapshots", now - timedelta(days=1), now)
    await store.db.execute(
        "INSERT INTO portfolio_snapshots (strategy_id, snapshot_time, total_value, "
        "cash_balance) SELECT s, now() - make_interval(mins => g), 100, 100 "
        "FROM unnest(%s::uuid[]) s, generate_series(1, 500) g",
        (strategies,),
    )
    await store.db.execute("ANALYZE portfolio_snapshots")


async def _a_log_row(store: TradeStore) -> None:
    await store.db.execute(
        "INSERT INTO system_logs (timestamp, level, category, message) "
        "VALUES (now(), 'INFO', 'SYSTEM', 'plan probe')"
    )
