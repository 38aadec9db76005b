"""The CLI prints one-line errors (never a traceback) and reports schema status."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import MODE


def tradestore(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS_"))}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "tradestore", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"DB_PORT": "not-a-port", "DATABASE_URL": ""}, "DB_PORT"),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, "Connection refused"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ],
)
def test_errors_are_one_line_without_traceback(env: dict[str, str], needle: str) -> None:
    result = tradestore("db", "status", env=env)
    assert result.returncode == 1
    assert needle in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr + result.stdout


def test_db_status_and_dry_run(migrated_db_url: str) -> None:
    env = {"DATABASE_URL": migrated_db_url, "REDIS_URL": ""}
    status = tradestore("db", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert "0001_core" in status.stdout and f"time-series mode: {MODE}" in status.stdout
    dry = tradestore("db", "migrate", "--dry-run", env=env)
    assert dry.returncode == 0 and "schema is up to date" in dry.stdout
