"""How quickly the CLI answers what needs no database: `tradestore --help` and
`tradestore --version`, medians of 7 runs, against `python -c pass` (the interpreter's
own start) in the same run. The goal is under 0.5 s each; the figures say how much of it
is ours."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BenchContext, Result

RUNS = 7
GOAL_S = 0.5


def _median_s(command: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _executable() -> str:
    """The tradestore script beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("tradestore")
    return str(beside) if beside.exists() else shutil.which("tradestore") or "tradestore"


async def run(ctx: BenchContext) -> list[Result]:
    executable = _executable()
    interpreter = _median_s([sys.executable, "-c", "pass"])
    results = []
    for flag in ("--help", "--version"):
        ours = _median_s([executable, flag])
        results.append(
            Result(
                f"tradestore {flag} ({'under' if ours < GOAL_S else 'OVER'} the 0.5 s goal)",
                ours * 1000,
                interpreter * 1000,
                "ms",
                "python -c pass",
                higher_is_better=False,
            )
        )
    return results
