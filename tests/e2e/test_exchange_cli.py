"""`tradestore market backfill|follow` against a local indexer-shaped server."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.e2e.test_cli import Cli, cli, migrated  # noqa: F401 (fixtures)
from tests.exchange.binance_replay import Binance, recorded_klines
from tests.exchange.replay import Indexer, recorded_candles, running, this_minute

T0 = datetime(2025, 11, 3, tzinfo=UTC)


def test_backfill_several_tickers_then_resume_and_follow(migrated: Cli) -> None:  # noqa: F811
    with running(Indexer()) as indexer:
        for ticker in ("BTC-USD", "ETH-USD"):
            indexer.add(recorded_candles(ticker, T0, 1500))
        indexer.faults.append("429")
        shell = replace(migrated, env={**migrated.env, "TRADESTORE_DYDX_INDEXER_URL": indexer.url})
        args = ("market", "backfill", "dydx", "BTC-USD", "1m", "--since", "2025-11-03")
        window = ("--until", (T0 + timedelta(minutes=1500)).isoformat(), "--symbols", "ETH-USD")
        out = shell.ok(*args, *window)
        assert "BTC-USD 1m" in out and "ETH-USD 1m" in out and out.count("1,500") >= 4
        again = shell.ok(*args, *window)  # resumed: nothing missing
        assert again.count("│ 0 ") >= 6
        bad = shell("market", "backfill", "dydx", "NOPE-USD", "1m", "--since", "2025-11-03")
        assert bad.returncode == 1 and "ticker must be a valid ticker" in bad.stderr
        now = this_minute(room_s=15)
        indexer.add(recorded_candles("SOL-USD", now - timedelta(minutes=5), 6))
        followed = shell.interrupted("market", "follow", "dydx", "SOL-USD", "1m", after_s=4.0)
        assert followed.stdout.count("SOL-USD 20") == 1  # the last closed candle, once


def test_backfill_and_follow_through_ccxt(migrated: Cli) -> None:  # noqa: F811
    with running(Binance()) as binance:
        binance.add("BTCUSDT", "1m", recorded_klines(T0, 1200))
        binance.faults.append("429")
        env = {
            "TRADESTORE_CCXT_URLS": json.dumps({"binance": binance.url}),
            "TRADESTORE_CCXT_CONFIG": json.dumps({"binance": {"enableRateLimit": False}}),
        }
        shell = replace(migrated, env={**migrated.env, **env})
        args = ("market", "backfill", "ccxt:binance", "BTC/USDT", "1m", "--since", "2025-11-03")
        out = shell.ok(*args, "--until", (T0 + timedelta(minutes=1200)).isoformat())
        assert "BTC/USDT 1m" in out and out.count("1,200") >= 2
        listed = shell.ok("market", "list")
        assert any("binance" in line and "BTC/USDT" in line for line in listed.splitlines())
        bad = shell(
            "market", "backfill", "ccxt:binance", "NOPE/USDT", "1m", "--since", "2025-11-03"
        )
        assert bad.returncode == 1 and "no market 'NOPE/USDT'" in bad.stderr
        assert "Traceback" not in bad.stderr
        # the follow gets 15 s (a loaded machine took more than 5 to start it and store the
        # candle) inside a minute that does not close meanwhile (25 s of room)
        now = this_minute(room_s=25)
        binance.add("ETHUSDT", "1m", recorded_klines(now - timedelta(minutes=5), 6))
        followed = shell.interrupted(
            "market", "follow", "ccxt:binance", "ETH/USDT", "1m", after_s=15.0
        )
        assert followed.stdout.count("ETH/USDT 20") == 1  # the last closed candle, once
