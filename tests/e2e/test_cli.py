"""The installed `tradestore` executable, run as a user runs it: a subprocess on a fresh
database with REDIS_URL set, every command of README's command table under a timeout.
A command that hangs fails its test; so does a traceback or a wrong exit status."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, create_database, delete_keys, drop_database, make_settings
from tests.e2e.runner import TIMEOUT_S, clean_env, run_cli, tradestore_executable
from tests.trading.helpers import new_strategy
from tradestore import TradeStore

QUICK = [
    ("ratelimit", "status", "e2e"),
    ("sessions", "list", "nobody"),
    ("strategies", "list"),
    ("market", "list"),
    ("health",),
]
QUICK_RUNS = 20


@dataclass
class Cli:
    env: dict[str, str]
    workdir: Path
    strategy: str = ""
    backtest_id: str = ""

    def __call__(
        self, *args: str, timeout_s: float = TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env=self.env, timeout_s=timeout_s, cwd=self.workdir)
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        return result

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, f"tradestore {' '.join(args)}: {result.stderr}"
        return result.stdout

    def interrupted(self, *args: str, after_s: float = 3.0) -> subprocess.CompletedProcess[str]:
        """Start a long-running command, Ctrl-C it, and expect a prompt, clean exit."""
        process = subprocess.Popen(
            [tradestore_executable(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
        )
        time.sleep(after_s)
        if process.poll() is not None:
            pytest.fail(f"`tradestore {' '.join(args)}` ended early: {process.communicate()}")
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"`tradestore {' '.join(args)}` did not stop within 10 s of Ctrl-C")
        assert "Traceback" not in stdout + stderr, stderr
        assert process.returncode == 0, f"{' '.join(args)}: exit {process.returncode} {stderr}"
        return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    name = f"tradestore_e2e_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    prefix = f"tse2e:{uuid.uuid4().hex[:8]}:"
    workdir = tmp_path_factory.mktemp("e2e")
    env = clean_env(
        DATABASE_URL=url,
        REDIS_URL=REDIS_URL,
        TRADESTORE_REDIS_PREFIX=prefix,
        TRADESTORE_DATA_DIR=str(workdir / "data"),
        COLUMNS="200",
    )
    yield Cli(env=env, workdir=workdir)
    drop_database(name)
    delete_keys(prefix)


def test_status_before_migrate_then_migrate_then_status(cli: Cli) -> None:
    before = cli("db", "status")
    assert before.returncode == 0 and "pending" in before.stdout
    out = cli.ok("db", "migrate")
    assert "applied 0001_core" in out and "time-series mode" in out
    assert "up to date" in cli.ok("db", "migrate")
    assert "0 pending" in cli.ok("db", "status")
    assert "health" in cli.ok("status")
    assert json.loads(cli.ok("status", "--json"))["health"]["postgresql"]["ok"] is True
    assert "would apply" not in cli.ok("db", "migrate", "--dry-run")


@pytest.fixture
def migrated(cli: Cli) -> Cli:
    cli.ok("db", "migrate")
    return cli


def test_seed_through_the_library(migrated: Cli) -> None:
    """Records for the commands that show one (a strategy, a backtest, market data)."""
    cli = migrated

    async def seed() -> None:
        settings = make_settings(
            cli.env["DATABASE_URL"], redis_key_prefix=cli.env["TRADESTORE_REDIS_PREFIX"]
        )
        async with TradeStore(settings) as store:
            strategy = await new_strategy(store, name="e2e-strategy")
            now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            backtest = await store.backtests.create(
                strategy.id,
                name="e2e backtest",
                symbol="BTC-USD",
                timeframe="1h",
                start=now - timedelta(days=2),
                end=now,
                initial_capital="10000",
            )
            cli.strategy, cli.backtest_id = strategy.name, str(backtest.id)

    asyncio.run(seed())
    start = datetime(2024, 1, 1, tzinfo=UTC)
    lines = ["timestamp,open,high,low,close,volume"] + [
        f"{(start + timedelta(minutes=i)).isoformat()},{100 + i},{101 + i},{99 + i},{100.5 + i},2"
        for i in range(120)
    ]
    (cli.workdir / "BTC-USD-1m.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.timeout(900)  # ~35 commands, each with its own bound
def test_every_command_of_the_readme_table(migrated: Cli) -> None:
    cli = migrated
    assert cli.strategy, "seeding failed"
    out = cli.ok("market", "import", "BTC-USD-1m.csv", "--symbol", "BTC-USD", "--timeframe", "1m")
    assert "120" in out
    assert "BTC-USD" in cli.ok("market", "list")
    cli.ok("market", "export", "BTC-USD", "1m", "--out", "out.csv", "--since", "2024-01-01")
    assert (cli.workdir / "out.csv").read_text().count("\n") == 121
    cli.ok("market", "gaps", "BTC-USD", "1m", "--since", "2024-01-01")
    cli.ok("market", "quality", "BTC-USD", "1m", "--since", "2024-01-01")
    assert cli.strategy in cli.ok("strategies", "list")
    assert cli.strategy in cli.ok("strategies", "show", cli.strategy)
    cli.ok("orders", "list")
    cli.ok("trades", "list", "--strategy", cli.strategy)
    cli.ok("trades", "list", "--archived")
    cli.ok("metrics", "compute")
    cli.ok("report", cli.strategy)
    cli.ok("report", cli.strategy, "--html", "report.html")
    assert (cli.workdir / "report.html").stat().st_size > 1000
    assert "e2e backtest" in cli.ok("backtests", "list")
    assert "e2e backtest" in cli.ok("backtests", "show", cli.backtest_id)
    assert "e2e backtest" in cli.ok("backtests", "show", cli.backtest_id[:8])
    assert cli.backtest_id[:8] in cli.ok("backtests", "compare", cli.backtest_id[:8])
    cli.ok("backtests", "best", "BTC-USD", "1h")
    assert json.loads(cli.ok("backtests", "list", "--format", "json"))[0]["id"] == cli.backtest_id
    cli.ok("events", "replay", "--since", "2020-01-01")
    cli.ok("sessions", "list", "nobody")
    cli.ok("ratelimit", "status", "e2e")
    cli.ok("logs", "search")
    cli.ok("logs", "tail")
    cli.ok("config", "set", "risk.max_position_usd", "1000", "--type", "number")
    assert "1000" in cli.ok("config", "get", "risk.max_position_usd")
    assert "risk.max_position_usd" in cli.ok("config", "list")
    missing = cli("config", "get", "no.such.key", "--reveal")
    assert missing.returncode == 1 and missing.stderr.startswith("error:")
    cli.ok("maintain", "plan")
    cli.ok("maintain", "plan", "--archive-after", "400d")
    bad_age = cli("maintain", "run", "--archive-after", "soon")
    assert bad_age.returncode == 1 and "--archive-after" in bad_age.stderr
    cli.ok("maintain", "run")
    cli.ok("maintain", "compression")
    exported = cli.ok(
        "maintain", "export", "--since", "2024-01-01", "--until", "2024-01-02", "--dir", "arch"
    )
    assert "exported 120 rows" in exported
    (manifest,) = (cli.workdir / "arch").glob("*.manifest.json")
    assert "imported 0 rows" in cli.ok("maintain", "import", str(manifest))  # all kept
    neither = cli("maintain", "export", "--since", "2024-01-01")
    assert neither.returncode == 1 and "--until" in neither.stderr
    cli.ok("health", "--json")


@pytest.mark.timeout(600)
def test_long_running_commands_stop_cleanly_on_ctrl_c(migrated: Cli) -> None:
    cli = migrated
    cli.interrupted("events", "tail")
    cli.interrupted("events", "relay")
    cli.interrupted("logs", "tail", "--follow")
    cli.interrupted("metrics", "serve", "--port", "0")
    cli.interrupted("maintain", "schedule", "--interval", "60")
    cli.interrupted("status", "--watch", "--interval", "0.5")


@pytest.mark.timeout(900)  # 100 process starts; each command has its own 30 s bound
def test_quick_commands_never_hang(migrated: Cli) -> None:
    cli = migrated
    runs = [command for command in QUICK for _ in range(QUICK_RUNS)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: cli(*args, timeout_s=30), runs))
    failed = [(r.args, r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert failed == []
    assert len(results) == len(QUICK) * QUICK_RUNS
