"""TimescaleDB-only paths. They run when TRADESTORE_TEST_TIMESCALE_URL names a server
with the timescaledb extension (an admin URL: the test creates and drops a database),
and are skipped otherwise."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.conftest import delete_keys, make_settings
from tests.marketdata.helpers import candles
from tradestore import TradeStore
from tradestore.marketdata.rollups import TARGETS
from tradestore.ops.compression import Compression
from tradestore.settings import TimeSeriesMode
from tradestore.timeframes import Timeframe

URL = os.environ.get("TRADESTORE_TEST_TIMESCALE_URL")
pytestmark = [
    pytest.mark.timescale,
    pytest.mark.skipif(not URL, reason="TRADESTORE_TEST_TIMESCALE_URL is not set"),
]
T0 = datetime(2024, 5, 6, 22, 0, tzinfo=UTC)


@pytest.fixture
async def ts_store() -> AsyncIterator[TradeStore]:
    assert URL is not None
    name = f"tradestore_ts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(URL)._replace(path=f"/{name}"))
    settings = make_settings(url, timeseries_mode="timescale")
    try:
        async with TradeStore(settings) as store:
            result = await store.migrate()
            assert result.mode is TimeSeriesMode.TIMESCALE
            yield store
    finally:
        delete_keys(settings.redis_key_prefix)
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def test_hypertables_with_the_seed_chunk_intervals(ts_store: TradeStore) -> None:
    rows = await ts_store.db.query(
        "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions"
    )
    intervals = {r["hypertable_name"]: r["time_interval"] for r in rows}
    assert intervals["market_data"] == timedelta(days=1)
    assert intervals["portfolio_snapshots"] == timedelta(days=7)
    assert intervals["system_logs"] == timedelta(days=1)


async def test_continuous_aggregates_equal_resampling(ts_store: TradeStore) -> None:
    await ts_store.market_data.store_candles("TSR-USD", "1m", candles(2000, start=T0))
    rollups = ts_store.rollups
    await rollups.refresh()
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=3)
    for tf in TARGETS:
        rolled = await rollups.read("TSR-USD", tf, start, end, exact=True)
        direct = await ts_store.market_data.resample("TSR-USD", tf, start, end, exact=True)
        assert len(rolled) == len(direct) > 0
        for name, values in direct.columns().items():
            assert list(rolled.columns()[name]) == list(values), (tf, name)


async def test_compression_and_retention_policies(ts_store: TradeStore) -> None:
    jobs = await ts_store.db.query(
        "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs "
        "WHERE hypertable_name IS NOT NULL"
    )
    kinds = {(j["proc_name"], j["hypertable_name"]) for j in jobs}
    assert ("policy_compression", "market_data") in kinds
    assert ("policy_retention", "system_logs") in kinds
    settings = await ts_store.db.query(
        "SELECT attname, segmentby_column_index, orderby_column_index "
        "FROM timescaledb_information.compression_settings WHERE hypertable_name = 'market_data'"
    )
    segment = {s["attname"] for s in settings if s["segmentby_column_index"] is not None}
    assert segment == {"venue", "symbol", "timeframe"}
    old = (datetime.now(UTC) - timedelta(days=30)).replace(second=0, microsecond=0)
    result = await ts_store.market_data.store_candles("TSC-USD", "1m", candles(3000, start=old))
    assert result.inserted == 3000 and not result.rejected
    compression = Compression(ts_store.db, TimeSeriesMode.TIMESCALE)
    first = await compression.compress_now()
    assert first > 0
    assert await compression.compress_now() == 0  # already compressed: not counted again
    status = await compression.status()
    assert status.available and status.compressed_chunks > 0 and status.ratio is not None


async def test_status_counts_hypertables_among_the_largest_tables(ts_store: TradeStore) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    await ts_store.market_data.store_candles("TSZ-USD", "1m", candles(5000, start=start))
    await ts_store.db.execute("ANALYZE market_data")  # row estimates are the planner's
    metrics = await ts_store.monitor.collect()
    sizes = {t["table_name"]: t for t in metrics.tables}
    market = sizes["market_data"]
    assert market["table_bytes"] + market["index_bytes"] > 500_000  # the chunks' bytes
    assert market["rows_estimate"] >= 4000


async def test_retention_policy_is_one_source_of_truth_for_timescale_jobs(
    ts_store: TradeStore,
) -> None:
    retention = ts_store.retention

    async def job_drop_after(table: str) -> object:
        return await ts_store.db.query_value(
            "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_name = %s",
            (table,),
        )

    assert await job_drop_after("system_logs") == "30 days"
    await retention.set_policy("system_logs", timedelta(days=90))
    assert await job_drop_after("system_logs") == "90 days"
    await retention.set_policy("system_logs", None)
    assert await job_drop_after("system_logs") is None
    await retention.set_policy("market_data", timedelta(days=365))  # maintain run drops it
    assert await job_drop_after("market_data") is None
    assert await retention.run() == []  # nothing that old: nothing said to be dropped


async def test_a_late_correction_below_the_watermark_shows_in_coarse_reads(
    ts_store: TradeStore,
) -> None:
    symbol = "TSL-USD"
    start = datetime(2024, 3, 4, tzinfo=UTC)
    rows = candles(3 * 1440, start=start)
    await ts_store.market_data.store_candles(symbol, "1m", rows)
    rollups = ts_store.rollups
    refreshed = await rollups.refresh()
    assert refreshed.window is not None and refreshed.days > 0  # says what it refreshed
    fixed = dict(rows[100], high=rows[100]["high"] + 50)
    await ts_store.market_data.store_candles(symbol, "1m", [fixed])
    end = start + timedelta(days=3)
    for tf in (Timeframe.H1, Timeframe.D1):
        frame, source = await rollups.candles(symbol, tf, start, end, exact=True)
        expected = await ts_store.market_data.resample(symbol, tf, start, end, exact=True)
        assert source == "rollup"
        assert list(frame.high) == list(expected.high), tf
    assert (
        max((await rollups.read(symbol, Timeframe.D1, start, end, exact=True)).high)
        == (fixed["high"])
    )


async def test_the_open_bucket_is_never_materialised_early(ts_store: TradeStore) -> None:
    symbol = "TSO-USD"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    day = Timeframe.D1.bucket_start(now)
    if now - day < timedelta(minutes=30):
        pytest.skip("too close to midnight UTC for a bucket that is open on both sides")
    first = candles(10, start=day)
    await ts_store.market_data.store_candles(symbol, "1m", first)
    await ts_store.rollups.refresh()
    later = candles(5, start=day + timedelta(minutes=10), base="200.5")
    await ts_store.market_data.store_candles(symbol, "1m", later)
    frame, _ = await ts_store.rollups.candles(
        symbol, Timeframe.D1, day, day + timedelta(days=1), exact=True
    )
    assert frame.close[-1] == later[-1]["close"]  # today's candle includes the new minutes


async def test_rollups_outlive_raw_retention(ts_store: TradeStore) -> None:
    symbol = "TSR-USD"
    start = (datetime.now(UTC) - timedelta(days=420)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    await ts_store.market_data.store_candles(symbol, "1m", candles(3 * 1440, start=start))
    rollups = ts_store.rollups
    await rollups.refresh()
    end = start + timedelta(days=3)
    before = await rollups.read(symbol, Timeframe.D1, start, end, exact=True)
    assert len(before) == 3
    await ts_store.retention.set_policy("market_data", timedelta(days=365))
    dropped = await ts_store.retention.run()
    assert dropped and "market_data" in dropped[0]
    assert (
        await ts_store.db.query_value(
            "SELECT count(*) FROM market_data WHERE symbol = %s", (symbol,)
        )
        == 0
    )
    await rollups.refresh()  # after retention: must not erase what was rolled up
    after = await rollups.read(symbol, Timeframe.D1, start, end, exact=True)
    assert list(after.close) == list(before.close) and len(after) == 3


async def test_aggregate_policies_never_refresh_below_30_days(ts_store: TradeStore) -> None:
    offsets = await ts_store.db.query(
        "SELECT hypertable_name, config->>'start_offset' AS start_offset "
        "FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'"
    )
    assert len(offsets) == 6 and {o["start_offset"] for o in offsets} == {"30 days"}


async def _counts_while(
    ts_store: TradeStore, symbol: str, refresh: Coroutine[Any, Any, object]
) -> set[int]:
    """Every row count of symbol's 5m aggregate seen while `refresh` runs."""
    url = ts_store.settings.postgres_conninfo()
    assert url is not None
    seen: set[int] = set()
    task = asyncio.ensure_future(refresh)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as reader:
        while not task.done():
            cur = await reader.execute(
                "SELECT count(*) FROM market_data_5m WHERE symbol = %s", (symbol,)
            )
            row = await cur.fetchone()
            assert row is not None
            seen.add(int(row[0]))
    await task
    return seen


async def test_a_policy_refresh_never_shows_part_of_the_history(ts_store: TradeStore) -> None:
    symbol = "TSA-USD"
    start = Timeframe.D1.bucket_start(datetime.now(UTC) - timedelta(days=28))
    await ts_store.market_data.store_candles(symbol, "1m", candles(40_000, start=start))
    job = await ts_store.db.query_value(
        "SELECT job_id FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_refresh_continuous_aggregate' "
        "AND config->>'mat_hypertable_id' = (SELECT mat_hypertable_id::text "
        "FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = 'market_data_5m')"
    )
    assert job is not None

    async def run_policy() -> None:
        url = ts_store.settings.postgres_conninfo()
        assert url is not None
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            try:
                await conn.execute("CALL run_job(%s)", (job,))
            # on some PostgreSQL minor versions a job ends so after doing its work
            except psycopg.errors.InternalError as exc:
                assert "cannot drop portal" in str(exc)

    assert await _counts_while(ts_store, symbol, run_policy()) == {8000}
    materialised = await ts_store.db.query_value(
        "SELECT count(*) FROM market_data_5m WHERE symbol = %s AND bucket < %s",
        (symbol, start + timedelta(days=20)),
    )
    assert materialised == 20 * 288


async def test_tradestores_own_refresh_is_atomic_too(ts_store: TradeStore) -> None:
    symbol = "TSB-USD"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    await ts_store.market_data.store_candles(symbol, "1m", candles(40_000, start=start))
    rollups = ts_store.rollups
    assert await _counts_while(ts_store, symbol, rollups.refresh()) == {8000}
