"""metrics compute, report --html, backtests best through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.trading.helpers import new_strategy
from tradestore import TradeStore


def cli(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL="")
    return subprocess.run(
        [sys.executable, "-m", "tradestore", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


async def test_metrics_report_and_backtests(
    store: TradeStore, migrated_db_url: str, tmp_path: Path
) -> None:
    strategy = await new_strategy(store)
    trade = await store.trades.open(
        {
            "strategy_id": strategy.id,
            "symbol": "BTC-USD",
            "side": "BUY",
            "entry_price": "100",
            "quantity": "2",
        }
    )
    await store.trades.close(trade.id, exit_price="104", exit_reason="SIGNAL")
    done = cli("metrics", "compute", "--strategy", strategy.name, db_url=migrated_db_url)
    assert done.returncode == 0, done.stderr
    assert "computed 31 day(s) for 1 strategy" in " ".join(done.stdout.split())
    rows = await store.db.query_value(
        "SELECT count(*) FROM strategy_metrics WHERE strategy_id = %s", (strategy.id,)
    )
    assert rows == 31
    page = tmp_path / "report.html"
    shown = cli("report", strategy.name, "--html", str(page), db_url=migrated_db_url)
    assert shown.returncode == 0, shown.stderr
    text = page.read_text()
    assert "Closed trades (1 most recent)" in text and "<script" not in text
    assert "Charts need equity on two days or more" in text  # one closed trade: one day
    assert "closed trades" in shown.stdout
    listed = cli("backtests", "best", "BTC-USD", "1h", db_url=migrated_db_url)
    assert listed.returncode == 0 and "best for BTC-USD 1h" in listed.stdout
