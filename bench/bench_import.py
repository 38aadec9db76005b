"""Peak memory of `tradestore market import` on a large Binance CSV (1 GB by default; set
TRADESTORE_BENCH_IMPORT_MB), against pyarrow streaming the same file in the same run.

Each side runs in its own subprocess; its peak RSS comes from getrusage(RUSAGE_CHILDREN).
Target: under 500 MB for 1 GB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import BenchContext, Result

SIZE_MB = int(os.environ.get("TRADESTORE_BENCH_IMPORT_MB", "1024"))
ROWS_PER_BLOCK = 200_000

BASELINE = """
import sys, pyarrow as pa, pyarrow.csv as c
opts = c.ReadOptions(autogenerate_column_names=True, block_size=1 << 20)
with pa.OSFile(sys.argv[1], "rb") as f:
    print(sum(b.num_rows for b in c.open_csv(f, read_options=opts)))
"""
# Runs one command and prints its peak RSS (KB): a fresh parent per measurement, since
# RUSAGE_CHILDREN is the maximum over every child a process ever waited for.
MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def write_csv(path: Path, size_mb: int) -> int:
    """Binance-layout kline rows, one minute apart, until the file reaches size_mb."""
    rng = np.random.default_rng(7)
    start_ms = 1_577_836_800_000  # 2020-01-01
    written = rows = 0
    with path.open("w") as f:
        while written < size_mb << 20:
            n = ROWS_PER_BLOCK
            t = start_ms + (rows + np.arange(n)) * 60_000
            close = np.round(30_000 + rng.normal(0, 50, n), 2)
            high, low = close + 5, close - 5
            lines = [
                f"{a},{c:.8f},{h:.8f},{lo:.8f},{c:.8f},12.34500000,{a + 59_999},"
                f"380000.12,{k},1.1,30000.5,0"
                for a, c, h, lo, k in zip(
                    t.tolist(),
                    close.tolist(),
                    high.tolist(),
                    low.tolist(),
                    (t % 97).tolist(),
                    strict=True,
                )
            ]
            block = "\n".join(lines) + "\n"
            f.write(block)
            written += len(block)
            rows += n
    return rows


def peak_rss_mb(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Peak RSS in MB of one run of `args`, and its wall time."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], env=env, check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip()) / 1024, time.perf_counter() - started


async def run(ctx: BenchContext) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "BTCUSDT-1m-2020-01.csv"
        rows = write_csv(path, SIZE_MB)
        env = dict(os.environ, DATABASE_URL=ctx.db_url, REDIS_URL="")
        baseline_mb, _ = peak_rss_mb([sys.executable, "-c", BASELINE, str(path)], env)
        ours_mb, seconds = peak_rss_mb(
            [
                sys.executable,
                "-m",
                "tradestore",
                "market",
                "import",
                str(path),
                "--symbol",
                "BENCH-IMPORT",
                "--timeframe",
                "1m",
            ],
            env,
        )
    size = f"{SIZE_MB} MB CSV, {rows:,} rows, {rows / seconds:,.0f} rows/s"
    return [
        Result(
            f"peak RSS importing a {size}",
            ours_mb,
            baseline_mb,
            "MB",
            "pyarrow streaming read of the same file",
            higher_is_better=False,
        )
    ]
