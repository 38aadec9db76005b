"""Settings: environment names, defaults, malformed values, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradestore import ConfigurationError
from tradestore.settings import load_settings, mask_url

SEED_AND_URL_VARS = [
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "TRADESTORE_POOL_MAX_SIZE",
    "TRADESTORE_POOL_MIN_SIZE",
    "REDIS_TLS",
    "DB_SSLMODE",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SEED_AND_URL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_follow_the_seed() -> None:
    s = load_settings()
    assert (s.pool_min_size, s.pool_max_size) == (2, 20)
    assert s.connect_timeout_s == 2.0 and s.statement_timeout_ms == 30_000
    assert s.idle_timeout_s == 30.0
    assert not s.database_configured and s.postgres_conninfo() is None
    assert not s.redis_configured and s.redis_connection_url() is None


def test_seed_variables_build_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PORT", "6543")
    monkeypatch.setenv("DB_NAME", "trading")
    monkeypatch.setenv("DB_USER", "bot")
    monkeypatch.setenv("DB_PASSWORD", "p@ss/word")
    monkeypatch.setenv("DB_SSLMODE", "verify-full")
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    monkeypatch.setenv("REDIS_TLS", "true")
    s = load_settings()
    assert s.postgres_conninfo() == "postgresql://bot:p%40ss%2Fword@db.internal:6543/trading"
    assert s.postgres_connect_kwargs()["sslmode"] == "verify-full"
    assert s.redis_connection_url() == "rediss://:s3cret@cache.internal:6379/0"


def test_url_variables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@h/db")
    monkeypatch.setenv("DB_HOST", "ignored")
    monkeypatch.setenv("REDIS_URL", "rediss://h:6380/1")
    s = load_settings()
    assert s.postgres_conninfo() == "postgresql://u:pw@h/db"
    assert s.redis_connection_url() == "rediss://h:6380/1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PORT", "fivefourthreetwo"),
        ("DB_PORT", "70000"),
        ("TRADESTORE_POOL_MAX_SIZE", "0"),
        ("DATABASE_URL", "mysql://x/y"),
        ("REDIS_URL", "http://cache"),
        ("DB_SSLMODE", "sometimes"),
        ("REDIS_TLS", "perhaps"),
    ],
)
def test_malformed_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()


def test_min_above_max_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADESTORE_POOL_MIN_SIZE", "30")
    with pytest.raises(ConfigurationError, match="TRADESTORE_POOL_MIN_SIZE"):
        load_settings()


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@h/db")
    monkeypatch.setenv("REDIS_PASSWORD", "hunter3")
    s = load_settings()
    assert "hunter2" not in repr(s) and "hunter3" not in repr(s)
    assert mask_url("postgresql://u:hunter2@h:5/db") == "postgresql://u:***@h:5/db"
    monkeypatch.setenv("DATABASE_URL", "mysql://u:hunter2@h/db")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)
