"""Benchmark harness: each benchmark prints our figure, a raw baseline measured in the
same run, and their ratio. Nothing here asserts a time; the ratios are for reading.

A benchmark module is `bench/bench_<name>.py` with `async def run(ctx: BenchContext)
-> list[Result]`. The harness creates a scratch database (migrated) on the server of
`TRADESTORE_BENCH_ADMIN_URL` (default: the local postgres) and drops it afterwards.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tradestore import Settings, TradeStore

ADMIN_URL = os.environ.get(
    "TRADESTORE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TRADESTORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# an admin URL of a TimescaleDB server: benchmarks that compare the two time-series modes
# run their TimescaleDB half in a scratch database there (skipped without one)
TIMESCALE_ADMIN_URL = os.environ.get("TRADESTORE_BENCH_TIMESCALE_URL") or os.environ.get(
    "TRADESTORE_TEST_TIMESCALE_URL"
)


@dataclass(frozen=True)
class Result:
    name: str
    ours: float
    baseline: float
    unit: str  # e.g. "ops/s", "rows/s", "µs/op"
    baseline_name: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        """Ours relative to the baseline; > 1 means ours is better whichever the unit."""
        if self.higher_is_better:
            return self.ours / self.baseline if self.baseline else float("nan")
        return self.baseline / self.ours if self.ours else float("nan")


@dataclass
class BenchContext:
    db_url: str
    redis_url: str
    settings: Settings
    store: TradeStore  # plain PostgreSQL (native mode)
    timescale: TradeStore | None = None  # TimescaleDB mode, when a server is configured


async def timed(n: int, op: Callable[[], Awaitable[object]]) -> float:
    """Seconds per operation over n sequential calls (after a short warm-up)."""
    for _ in range(min(50, n)):
        await op()
    started = time.perf_counter()
    for _ in range(n):
        await op()
    return (time.perf_counter() - started) / n


async def timed_pair(
    n: int,
    ours: Callable[[], Awaitable[object]],
    baseline: Callable[[], Awaitable[object]],
    *,
    rounds: int = 7,
) -> tuple[float, float]:
    """Seconds per operation of ours and of the baseline, measured in alternating rounds
    of n/rounds calls each, the median round of each: on a shared machine whose speed
    drifts over seconds, two back-to-back runs compare the drift, not the code."""
    per_round = max(1, n // rounds)
    ours_rounds, baseline_rounds = [], []
    for _ in range(rounds):
        ours_rounds.append(await timed(per_round, ours))
        baseline_rounds.append(await timed(per_round, baseline))
    return statistics.median(ours_rounds), statistics.median(baseline_rounds)


def create_scratch_database(admin_url: str = ADMIN_URL) -> tuple[str, str]:
    name = f"tradestore_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_scratch_database(name: str, admin_url: str = ADMIN_URL) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def bench_settings(db_url: str, mode: str = "native") -> Settings:
    return Settings(  # type: ignore[call-arg]
        database_url=db_url,
        redis_url=REDIS_URL,
        redis_key_prefix=f"tsbench:{uuid.uuid4().hex[:8]}:",
        timeseries_mode=mode,
        event_relay=False,
        _env_file=None,
    )
