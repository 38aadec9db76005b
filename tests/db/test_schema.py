"""The migrated schema against the seed's, read from the catalog; every CHECK enforced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg import sql

from tests.db import seed_schema as seed
from tradestore import ConstraintViolation, TradeStore

COLUMNS_SQL = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default
  FROM pg_attribute a
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""

CONSTRAINTS_SQL = """
SELECT conname, contype, pg_get_constraintdef(oid) AS definition,
       ARRAY(SELECT attname FROM unnest(conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute ON attrelid = conrelid AND attnum = k.n ORDER BY k.i) AS columns,
       confrelid::regclass::text AS referenced, confdeltype
  FROM pg_constraint WHERE conrelid = %s::regclass
"""

ON_DELETE = {"c": "CASCADE", "n": "SET NULL", "a": "NO ACTION", "r": "RESTRICT"}


@pytest.mark.parametrize("table", list(seed.COLUMNS))
async def test_columns_match_the_seed(store: TradeStore, table: str) -> None:
    rows = await store.db.query(COLUMNS_SQL, (table,))
    actual = {r["name"]: r for r in rows}
    expected = seed.parse_columns(table)
    assert list(actual) == list(expected), f"{table}: columns differ"
    for name, (type_, not_null, default) in expected.items():
        row = actual[name]
        assert row["type"] == type_, f"{table}.{name} type"
        assert row["not_null"] == not_null, f"{table}.{name} nullability"
        if default is None:
            assert row["default"] is None, f"{table}.{name} has an unexpected default"
        else:
            assert row["default"] is not None and row["default"].startswith(default), (
                f"{table}.{name} default {row['default']!r} is not {default!r}"
            )


@pytest.mark.parametrize("table", list(seed.COLUMNS))
async def test_keys_and_foreign_keys_match_the_seed(store: TradeStore, table: str) -> None:
    constraints = await store.db.query(CONSTRAINTS_SQL, (table,))
    primary = [c for c in constraints if c["contype"] == "p"]
    assert len(primary) == 1 and tuple(primary[0]["columns"]) == seed.PRIMARY_KEYS[table]
    uniques = sorted(tuple(c["columns"]) for c in constraints if c["contype"] == "u")
    assert uniques == sorted(seed.UNIQUE.get(table, []))
    foreign = {
        (table, c["columns"][0]): (c["referenced"], ON_DELETE[c["confdeltype"]])
        for c in constraints
        if c["contype"] == "f"
    }
    expected = {k: v for k, v in seed.FOREIGN_KEYS.items() if k[0] == table}
    assert foreign == expected


async def test_every_seed_check_constraint_exists(store: TradeStore) -> None:
    for table, name, fragment in seed.CHECKS:
        rows = await store.db.query(CONSTRAINTS_SQL, (table,))
        checks = {r["conname"]: r["definition"] for r in rows if r["contype"] == "c"}
        assert name in checks, f"{table}: CHECK {name} is missing"
        assert fragment in checks[name], f"{name}: {checks[name]}"


async def test_every_seed_index_exists(store: TradeStore) -> None:
    rows = await store.db.query(
        "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"
    )
    actual = {r["indexname"]: r for r in rows}
    for name, (table, fragment) in seed.INDEXES.items():
        assert name in actual, f"index {name} is missing"
        assert actual[name]["tablename"] == table
        assert f"USING {fragment}" in actual[name]["indexdef"], actual[name]["indexdef"]
    assert "idx_market_data_symbol_tf_time" not in actual  # duplicates the primary key
    assert "idx_market_data_volume" not in actual  # no query orders candles by volume (0022)


# --- every CHECK rejects a bad row, with an error naming it ----------------------------

NOW = datetime.now(UTC)


def valid_rows(strategy_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    return {
        "strategies": {
            "name": f"check-{uuid.uuid4().hex[:8]}",
            "version": "1",
            "config": "{}",
            "timeframe": "1h",
            "symbols": ["BTC-USD"],
        },
        "trades": {
            "strategy_id": strategy_id,
            "symbol": "BTC-USD",
            "side": "BUY",
            "type": "MARKET",
            "entry_price": 100,
            "quantity": 1,
            "status": "OPEN",
        },
        "market_data": {
            "symbol": f"CHK{uuid.uuid4().hex[:6]}",
            "timeframe": "1m",
            "timestamp": NOW,
            "open": 10,
            "high": 12,
            "low": 9,
            "close": 11,
            "volume": 5,
            "data_quality_score": 100,
        },
        "strategy_metrics": {"strategy_id": strategy_id, "date": NOW.date(), "win_rate": 0.5},
        "orders": {
            "strategy_id": strategy_id,
            "symbol": "BTC-USD",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": 1,
            "status": "PENDING",
            "time_in_force": "GTC",
        },
        "backtests": {
            "strategy_id": strategy_id,
            "name": "b",
            "symbol": "BTC-USD",
            "timeframe": "1h",
            "start_date": NOW,
            "end_date": NOW,
            "initial_capital": 1000,
            "status": "PENDING",
        },
        "system_logs": {"timestamp": NOW, "level": "INFO", "category": "TEST", "message": "m"},
        "system_config": {"key": f"k{uuid.uuid4().hex[:8]}", "value": "1", "data_type": "number"},
    }


BAD_VALUES: dict[str, tuple[str, dict[str, Any]]] = {
    "strategies_timeframe_check": ("strategies", {"timeframe": "2m"}),
    "valid_config": ("strategies", {"config": "[1, 2]"}),
    "valid_symbols": ("strategies", {"symbols": []}),
    "trades_side_check": ("trades", {"side": "HOLD"}),
    "trades_type_check": ("trades", {"type": "ICEBERG"}),
    "trades_quantity_check": ("trades", {"quantity": 0}),
    "trades_status_check": ("trades", {"status": "PENDING"}),
    "market_data_data_quality_score_check": ("market_data", {"data_quality_score": 101}),
    "valid_ohlc": ("market_data", {"high": 8}),
    "valid_volume": ("market_data", {"volume": -1}),
    "strategy_metrics_win_rate_check": ("strategy_metrics", {"win_rate": 1.5}),
    "orders_side_check": ("orders", {"side": "buy"}),
    "orders_type_check": ("orders", {"type": "TRAILING"}),
    "orders_quantity_check": ("orders", {"quantity": 0}),
    "orders_status_check": ("orders", {"status": "OPEN"}),
    "orders_time_in_force_check": ("orders", {"time_in_force": "DAY"}),
    "backtests_status_check": ("backtests", {"status": "DONE"}),
    "system_logs_level_check": ("system_logs", {"level": "TRACE"}),
    "system_config_data_type_check": ("system_config", {"data_type": "date"}),
}


def test_bad_values_cover_every_check() -> None:
    assert {name for _, name, _ in seed.CHECKS} == set(BAD_VALUES)


async def insert(store: TradeStore, table: str, row: dict[str, Any]) -> Any:
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING 1").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
    )
    return await store.db.query(query, list(row.values()))


@pytest.mark.parametrize("constraint", list(BAD_VALUES))
async def test_check_rejects_bad_row_naming_the_constraint(
    store: TradeStore, constraint: str
) -> None:
    strategy = await store.db.query_value(
        "INSERT INTO strategies (name, version, config, timeframe, symbols) "
        "VALUES (%s, '1', '{}', '1h', ARRAY['BTC-USD']) RETURNING id",
        (f"chk-{uuid.uuid4().hex[:8]}",),
    )
    table, bad = BAD_VALUES[constraint]
    row = valid_rows(strategy)[table] | bad
    # the valid row is accepted, so the rejection below is the constraint's doing
    await insert(store, table, valid_rows(strategy)[table])
    with pytest.raises(ConstraintViolation) as caught:
        await insert(store, table, row)
    assert constraint in str(caught.value)
    assert caught.value.constraint == constraint
