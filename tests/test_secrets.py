"""A secret never appears in any output, error or log: passwords in URLs (even when
libpq quotes a malformed one back), sensitive config values, and files given to the
importer by mistake."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.e2e.runner import clean_env, run_cli
from tradestore import TradeStore, TradeStoreError

PASSWORD = "s3cr%et-pass"  # an unencoded % makes libpq quote it back in its error


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli("-v", *args, env=clean_env(**env))


def test_a_malformed_database_url_password_is_never_echoed() -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x"
    for args in (["db", "status"], ["health"], ["demo"]):
        result = cli(*args, env={"DATABASE_URL": url})
        assert result.returncode != 0
        assert PASSWORD not in result.stdout + result.stderr, args
        assert "et-pass" not in result.stdout + result.stderr, args


async def test_connection_errors_carry_no_password(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x"
    with caplog.at_level(logging.DEBUG), pytest.raises(TradeStoreError) as caught:
        await TradeStore(make_settings(url)).open()
    error = caught.value
    texts = [str(error), repr(error), str(error.__cause__), repr(error.__context__), caplog.text]
    assert all(PASSWORD not in t and "et-pass" not in t for t in texts)
    assert error.__cause__ is None


def test_the_importer_never_echoes_file_content(tmp_path: Path) -> None:
    leaked = tmp_path / "environ"
    leaked.write_bytes(b"API_KEY=supersecret123\x00HOME=/root\x00")
    result = cli(
        "market",
        "import",
        str(leaked),
        "--symbol",
        "A-USD",
        "--timeframe",
        "1m",
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"},
    )
    assert "supersecret123" not in result.stdout + result.stderr
