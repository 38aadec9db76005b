"""Metrics and alerts fired by real conditions; the Prometheus exporter."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_settings
from tests.marketdata.helpers import candles, new_symbol
from tests.servers import free_port
from tests.trading.helpers import new_strategy, new_trade
from tradestore import Settings, TradeStore
from tradestore.ops.alerts import AlertThresholds, evaluate
from tradestore.ops.exporter import Sources, serve


def sources(store: TradeStore) -> Sources:
    thresholds = AlertThresholds.from_settings(store.settings)
    return Sources(store.monitor, store.db, store.health, thresholds)


async def test_metrics_cover_the_seed_and_more(store: TradeStore) -> None:
    m = await store.monitor.collect()
    assert m.errors == {}
    assert sum(m.connections.values()) >= 1
    assert {"market_data", "trades", "strategies"} <= {t["table_name"] for t in m.tables}
    assert m.cache_hit_ratio is None or 0 <= m.cache_hit_ratio <= 1
    assert m.database_bytes and m.database_bytes > 0
    assert m.redis["configured"] and m.redis["connected_clients"] >= 1
    # this server has no pg_stat_statements: we say so, and how to enable it
    assert m.top_queries == [] and m.top_queries_note is not None
    assert "shared_preload_libraries" in m.top_queries_note
    assert evaluate(m) == []


async def test_slow_query_and_lock_wait_alerts(store: TradeStore, settings: Settings) -> None:
    url = settings.postgres_conninfo()
    assert url is not None
    table = "alert_probe"
    await store.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (v int)")
    holder = await psycopg.AsyncConnection.connect(url)
    waiter = await psycopg.AsyncConnection.connect(url, autocommit=True)
    sleeper = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        blocked = asyncio.ensure_future(waiter.execute(f"SELECT * FROM {table}"))
        slow = asyncio.ensure_future(sleeper.execute("SELECT pg_sleep(3)"))
        await asyncio.sleep(1.3)
        started = asyncio.get_running_loop().time()
        metrics = await store.monitor.collect()
        assert asyncio.get_running_loop().time() - started < 3  # never waits on the lock
        assert "tables" in metrics.errors  # sizes of the locked table: reported, not awaited
        alerts = {a.name: a for a in evaluate(metrics)}
        assert alerts["lock_contention"].value > 100 and alerts["lock_contention"].threshold == 100
        assert alerts["slow_query"].value > 1000 and alerts["slow_query"].severity == "warning"
        relaxed = evaluate(
            await store.monitor.collect(), AlertThresholds(query_ms=60_000, lock_wait_ms=60_000)
        )
        assert relaxed == []
        await holder.rollback()
        await blocked
        slow.cancel()
    finally:
        for conn in (holder, waiter, sleeper):
            await conn.close()
        await store.db.execute(f"DROP TABLE IF EXISTS {table}")


async def test_saturated_pool_alert(migrated_db_url: str) -> None:
    settings = make_settings(migrated_db_url, pool_min_size=1, pool_max_size=2, connect_timeout_s=3)
    async with TradeStore(settings) as store:
        async with store.db.connection(), store.db.connection():
            waiting = asyncio.ensure_future(store.db.query("SELECT 1"))
            await asyncio.sleep(0.1)
            metrics = await store.monitor.collect()
            alert = next(a for a in evaluate(metrics) if a.name == "pool_exhaustion")
            assert alert.value > 0.9 and alert.threshold == 0.9
        await waiting


async def test_prometheus_exporter_parses_and_health(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    trade = await new_trade(store, strategy.id)
    await store.trades.close(trade.id, exit_price="103", exit_reason="SIGNAL")
    await new_trade(store, strategy.id)
    symbol = new_symbol()
    closed_at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    await store.market_data.store_candles(
        symbol, "1m", candles(5, start=closed_at - timedelta(minutes=5))
    )
    port = free_port()
    server = asyncio.ensure_future(serve(sources(store), "127.0.0.1", port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(50):
                with contextlib.suppress(httpx.ConnectError):
                    response = await client.get("/metrics")
                    break
                await asyncio.sleep(0.05)
            assert response.status_code == 200
            families = {f.name: f for f in text_string_to_metric_families(response.text)}
            assert families["tradestore_up"].samples[0].value == 1.0
            assert "tradestore_pg_table_size_bytes" in families
            assert "tradestore_pool_utilisation_ratio" in families
            assert all(name.startswith("tradestore_") for name in families)
            age = next(
                x
                for x in families["tradestore_candle_age_seconds"].samples
                if x.labels["symbol"] == symbol
            )
            assert 9 * 60 < age.value < 15 * 60  # the last candle closed 10 minutes ago
            rows = families["tradestore_market_data_rows"].samples
            assert any(x.labels["symbol"] == symbol and x.value == 5 for x in rows)
            pnl = families["tradestore_realised_pnl"].samples
            assert any(x.labels["strategy"] == strategy.name and x.value == 3.0 for x in pnl)
            assert families["tradestore_open_trades"].samples[0].value >= 1
            assert "tradestore_outbox_lag_seconds" in families
            assert "tradestore_orders" in families
            apps = families["tradestore_app_connections"].samples
            assert sum(x.value for x in apps) >= 1  # this store's own pool, not the monitor's
            health = await client.get("/health")
            assert health.status_code == 200 and health.json()["postgresql"]["ok"] is True
            assert (await client.get("/nope")).status_code == 404
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


def test_thresholds_from_the_environment_and_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradestore import ConfigurationError
    from tradestore.settings import load_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "TRADESTORE_ALERT_QUERY_MS=250\nTRADESTORE_ALERT_DISK_USAGE=0.7\n"
    )
    t = AlertThresholds.from_settings(load_settings())
    assert (t.query_ms, t.disk_usage, t.lock_wait_ms) == (250.0, 0.7, 100.0)
    monkeypatch.setenv("TRADESTORE_ALERT_QUERY_MS", "300")  # the environment wins
    assert AlertThresholds.from_settings(load_settings()).query_ms == 300.0
    monkeypatch.setenv("TRADESTORE_ALERT_LOCK_WAIT_MS", "soon")
    with pytest.raises(ConfigurationError, match="TRADESTORE_ALERT_LOCK_WAIT_MS"):
        load_settings()
