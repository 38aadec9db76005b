"""TradeStore lifecycle and health, with Redis up, stopped and absent."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.servers import RedisServer
from tradestore import TradeStore, TradeStoreError


async def test_health_reports_both_with_latency(store: TradeStore) -> None:
    health = await store.health()
    assert health.ok and health.postgresql.ok and health.redis.ok
    assert health.postgresql.latency_ms is not None and health.postgresql.latency_ms > 0
    assert health.redis.latency_ms is not None
    assert health.to_dict()["redis"]["ok"] is True


async def test_health_with_redis_stopped(
    migrated_db_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(migrated_db_url, redis_url=redis_server.url, redis_timeout_s=0.3)
    async with TradeStore(settings) as store:
        assert (await store.health()).redis.ok
        redis_server.kill()
        with caplog.at_level(logging.WARNING, logger="tradestore"):
            first = await store.health()
            second = await store.health()
        for health in (first, second):
            assert health.ok and health.postgresql.ok
            assert health.redis.ok is False and health.redis.latency_ms is None
        warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(warnings) == 1  # said once, not on every call
        # PostgreSQL writes carry on
        assert await store.db.query_value("SELECT 41 + 1") == 42


async def test_no_redis_configured_says_so_once(
    migrated_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tradestore"):
        async with TradeStore(make_settings(migrated_db_url, redis_url=None)) as store:
            health = await store.health()
            await store.health()
    assert health.ok and not health.redis.ok and health.redis.detail == "not configured"
    assert sum("in-process cache only" in r.getMessage() for r in caplog.records) == 1


async def test_closed_store_is_a_clear_error(settings: object) -> None:
    store = TradeStore(settings)  # type: ignore[arg-type]
    with pytest.raises(TradeStoreError, match="not open"):
        store.db  # noqa: B018
    assert not (await store.health()).ok


async def test_embedded_server_from_nothing(tmp_path: Path) -> None:
    settings = make_settings(None, data_dir=tmp_path / "ts", redis_url=None, timeseries_mode="auto")
    async with TradeStore(settings) as store:
        assert store.embedded_dir == str(tmp_path / "ts" / "pgdata")
        result = await store.migrate()
        assert "0001_core" in result.applied
        assert (await store.health()).postgresql.ok
    # a second run reuses the data directory: nothing left to migrate
    async with TradeStore(settings) as again:
        assert (await again.migrate()).applied == []
        assert await again.db.query_value("SELECT count(*) FROM strategies") == 0


async def test_unreachable_database_fails_fast_with_the_reason() -> None:
    settings = make_settings("postgresql://postgres@127.0.0.1:1/none", redis_url=None)
    with pytest.raises(TradeStoreError, match="Connection refused"):
        await TradeStore(settings).open()
