"""Where the installed `tradestore` executable is, and how long a command may take."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT_S = 120.0  # a command slower than this is treated as hung


def tradestore_executable() -> str:
    """The console script installed beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "tradestore"
    if beside.exists():
        return str(beside)
    found = shutil.which("tradestore")
    if found is None:
        pytest.fail("the tradestore executable is not installed (pip install -e .)")
    return found


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without the database and Redis settings a developer
    may have exported, plus overrides: a command sees only what the test gives it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "REDIS_", "DATABASE_URL", "TRADESTORE_"))
    }
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout_s: float = TIMEOUT_S, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed executable; a hang (no exit within timeout_s) fails the test."""
    try:
        return subprocess.run(
            [tradestore_executable(), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`tradestore {' '.join(args)}` hung (no exit within {timeout_s} s)")
