"""The CLI as scripts use it: --format json|csv, ids in full, id prefixes, relative
times, case-insensitive choices, --version, and piped output never cut to 80 columns."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from tests.cli.test_cli_analytics import cli
from tests.trading.helpers import new_strategy, new_trade
from tradestore import BacktestResults, TradeStore

D0 = datetime(2024, 3, 1, tzinfo=UTC)


async def _backtest(store: TradeStore, strategy_id: object, name: str, sharpe: float) -> str:
    bt = await store.backtests.create(
        strategy_id,  # type: ignore[arg-type]
        name=name,
        symbol="ETH-USD",
        timeframe="1h",
        start=D0,
        end=D0 + timedelta(days=30),
        initial_capital="10000",
    )
    await store.backtests.start(bt.id)
    results = BacktestResults(0.125, 0.5, 0.2, 0.05, sharpe, 10, 6, 0.6, 1.8, 1234, 720)
    times = np.array(["2024-03-01T00:00"], dtype="datetime64[us]")
    await store.backtests.complete(
        bt.id, results, equity_time=times, equity_value=np.array([10_000.0])
    )
    return str(bt.id)


async def test_backtests_by_prefix_compared_side_by_side_and_as_json(
    store: TradeStore, migrated_db_url: str
) -> None:
    strategy = await new_strategy(store)
    first = await _backtest(store, strategy.id, "fast", 1.5)
    second = await _backtest(store, strategy.id, "slow", 0.7)
    listed = cli(
        "backtests", "list", "--status", "completed", "--format", "json", db_url=migrated_db_url
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    by_id = {r["id"]: r for r in rows}
    assert {first, second} <= set(by_id)  # ids in full, status matched in any case
    assert by_id[first]["return"] == "0.1250" and by_id[first]["tf"] == "1h"
    table = cli("backtests", "list", "--strategy", strategy.name, db_url=migrated_db_url)
    assert first[:8] in table.stdout and "12.50%" in table.stdout
    shown = cli("backtests", "show", first[:8], db_url=migrated_db_url)
    assert shown.returncode == 0 and "fast" in shown.stdout and "12.50%" in shown.stdout
    compared = cli("backtests", "compare", first[:8], second[:10], db_url=migrated_db_url)
    assert compared.returncode == 0, compared.stderr
    sharpe = next(line for line in compared.stdout.splitlines() if "sharpe_ratio" in line)
    assert "1.50" in sharpe and "0.70" in sharpe
    unknown = cli("backtests", "show", "ffffffff", db_url=migrated_db_url)
    assert unknown.returncode == 1 and "no backtest id starts with ffffffff" in unknown.stderr
    bad = cli("backtests", "show", "BTC-USD", db_url=migrated_db_url)
    assert bad.returncode == 1 and "neither an id nor a prefix" in bad.stderr


async def test_trades_as_csv_with_relative_times_and_whole_ids(
    store: TradeStore, migrated_db_url: str
) -> None:
    strategy = await new_strategy(store)
    trade = await new_trade(store, strategy.id, entry_price="100.12345678", quantity="2")
    args = ("trades", "list", "--strategy", strategy.name, "--status", "open")
    out = cli(*args, "--since", "1h", "--until", "now", "--format", "csv", db_url=migrated_db_url)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["id"] for r in rows] == [str(trade.id)]  # whole, never cut with an ellipsis
    assert Decimal(rows[0]["entry price"]) == Decimal("100.12345678")
    none = cli(
        *args, "--since", "yesterday", "--until", "2d", "--format", "json", db_url=migrated_db_url
    )
    assert none.returncode == 0 and json.loads(none.stdout) == []  # until before since: none
    wide = cli("strategies", "list", db_url=migrated_db_url)  # piped: no 80-column cut
    assert str(strategy.id) in wide.stdout and "…" not in wide.stdout
    bad = cli(*args, "--since", "last tuesday", db_url=migrated_db_url)
    assert bad.returncode == 1 and "is not a time" in bad.stderr


def test_version(migrated_db_url: str) -> None:
    out = cli("--version", db_url=migrated_db_url)
    assert out.returncode == 0 and out.stdout.strip() == "tradestore 0.1.0"


def test_piped_logs_are_not_padded_to_the_wide_output(migrated_db_url: str) -> None:
    out = cli("health", db_url=migrated_db_url)  # REDIS_URL unset: a warning is logged
    assert out.returncode == 0 and "Redis is not configured" in out.stderr
    assert max(len(line) for line in out.stderr.splitlines()) < 200
