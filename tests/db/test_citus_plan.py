"""The schema against its sharding plan (docs/scaling.md): the tables Citus would
distribute by `symbol` are ready for it; what blocks distributing the trading tables by
`strategy_id` is exactly the documented list (a new blocker, or one removed, fails
here and updates the document); reference tables never point at distributed ones."""

from __future__ import annotations

from typing import Any

import pytest

from tradestore import TradeStore

BY_SYMBOL = {
    "market_data",
    "market_data_block",
    "market_data_catalog",
    "market_data_rollup",
    "rollup_dirty",
}
BY_STRATEGY = {
    "orders",
    "trades",
    "trades_archive",
    "strategy_metrics",
    "portfolio_snapshots",
    "strategy_state",
    "backtests",
    "backtest_series",
}
REFERENCE = {"strategies", "system_config", "system_config_history", "schema_info"}
LOCAL = {"event_outbox", "system_logs"}  # stay on the coordinator

# what blocks `create_distributed_table(t, 'strategy_id')` today (docs/scaling.md says why)
KNOWN_BLOCKERS = {
    ("orders", "PRIMARY KEY (id)"),
    ("orders", "UNIQUE (external_order_id)"),
    ("orders", "FOREIGN KEY (trade_id) REFERENCES trades(id) ON DELETE SET NULL"),
    ("trades", "PRIMARY KEY (id)"),
    ("trades_archive", "PRIMARY KEY (id)"),
    ("strategy_metrics", "PRIMARY KEY (id)"),
    ("portfolio_snapshots", "PRIMARY KEY (id, snapshot_time)"),
    ("backtests", "PRIMARY KEY (id)"),
    ("backtest_series", "PRIMARY KEY (backtest_id)"),
    ("backtest_series", "FOREIGN KEY (backtest_id) REFERENCES backtests(id) ON DELETE CASCADE"),
    ("system_logs", "FOREIGN KEY (trade_id) REFERENCES trades(id) ON DELETE SET NULL"),
    ("system_logs", "FOREIGN KEY (order_id) REFERENCES orders(id) ON DELETE SET NULL"),
}

CONSTRAINTS = """
SELECT c.conrelid::regclass::text AS tbl, c.contype, pg_get_constraintdef(c.oid) AS def,
       c.confrelid::regclass::text AS ref,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)) AS cols
  FROM pg_constraint c
 WHERE c.connamespace = current_schema()::regnamespace AND c.contype IN ('p', 'u', 'f')
   AND c.conrelid::regclass::text = ANY(%s)
"""


async def _constraints(store: TradeStore) -> list[dict[str, Any]]:
    tables = sorted(BY_SYMBOL | BY_STRATEGY | REFERENCE | LOCAL)
    return [dict(r) for r in await store.db.query(CONSTRAINTS, (tables,))]


@pytest.mark.native_only  # TimescaleDB's hypertables are not Citus tables either way
async def test_the_market_data_tables_are_ready_to_distribute_by_symbol(
    store: TradeStore,
) -> None:
    rows = [r for r in await _constraints(store) if r["tbl"] in BY_SYMBOL]
    assert rows and all("symbol" in r["cols"] for r in rows if r["contype"] in "pu")
    assert [r for r in rows if r["contype"] == "f"] == []


@pytest.mark.native_only
async def test_what_blocks_distributing_the_trading_tables_is_the_documented_list(
    store: TradeStore,
) -> None:
    found = set()
    for r in await _constraints(store):
        if r["tbl"] in BY_STRATEGY and r["contype"] in "pu" and "strategy_id" not in r["cols"]:
            found.add((r["tbl"], r["def"]))
        distributed = BY_STRATEGY | BY_SYMBOL
        if r["contype"] == "f" and r["ref"] in distributed:
            colocated = r["tbl"] in BY_STRATEGY and "strategy_id" in r["cols"]
            if not colocated:
                found.add((r["tbl"], r["def"]))
    assert found == KNOWN_BLOCKERS


async def test_reference_tables_point_at_no_distributed_table(store: TradeStore) -> None:
    refs = [r for r in await _constraints(store) if r["tbl"] in REFERENCE and r["contype"] == "f"]
    assert all(r["ref"] in REFERENCE for r in refs)
