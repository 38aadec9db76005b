"""TimescaleDB-only paths. They run when TRADESTORE_TEST_TIMESCALE_URL names a server
with the timescaledb extension (an admin URL: the test creates and drops a database),
and are skipped otherwise."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.conftest import delete_keys, make_settings
from tests.marketdata.helpers import assert_rollups_equal_resampling, candles
from tradestore import TradeStore
from tradestore.db import migrator
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
def ts_database() -> Iterator[str]:
    """The URL of a new, empty database on the TimescaleDB server, dropped after."""
    assert URL is not None
    name = f"tradestore_ts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(URL)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
async def ts_store(ts_database: str) -> AsyncIterator[TradeStore]:
    settings = make_settings(ts_database, timeseries_mode="timescale")
    try:
        async with TradeStore(settings) as store:
            result = await store.migrate()
            assert result.mode is TimeSeriesMode.TIMESCALE
            yield store
    finally:
        delete_keys(settings.redis_key_prefix)


async def test_hypertables_with_the_seed_chunk_intervals(ts_store: TradeStore) -> None:
    rows = await ts_store.db.query(
        "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions"
    )
    intervals = {r["hypertable_name"]: r["time_interval"] for r in rows}
    assert intervals["market_data"] == timedelta(days=1)
    assert intervals["portfolio_snapshots"] == timedelta(days=7)
    assert intervals["system_logs"] == timedelta(days=1)


async def test_rollups_equal_resampling(ts_store: TradeStore) -> None:
    await ts_store.market_data.store_candles("TSR-USD", "1m", candles(2000, start=T0))
    await ts_store.rollups.refresh()
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=3)
    await assert_rollups_equal_resampling(ts_store, "TSR-USD", start, end)


@pytest.mark.usefixtures("rows_only")  # rows, which TimescaleDB compresses
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


@pytest.mark.usefixtures("rows_only")  # rows in chunks
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


async def test_a_late_correction_shows_in_coarse_reads(ts_store: TradeStore) -> None:
    symbol = "TSL-USD"
    start = datetime(2024, 3, 4, tzinfo=UTC)
    rows = candles(3 * 1440, start=start)
    await ts_store.market_data.store_candles(symbol, "1m", rows)
    rollups = ts_store.rollups
    assert (await rollups.refresh()).days == 3
    fixed = dict(rows[100], high=rows[100]["high"] + 50)
    await ts_store.market_data.store_candles(symbol, "1m", [fixed])  # into a packed day
    end = start + timedelta(days=3)
    for tf in (Timeframe.H1, Timeframe.D1):
        frame, source = await rollups.candles(symbol, tf, start, end, exact=True)
        expected = await ts_store.market_data.resample(symbol, tf, start, end, exact=True)
        assert source == "resample"  # its day is dirty until the next refresh
        assert list(frame.high) == list(expected.high), tf
    assert (await rollups.refresh()).days == 1
    frame, source = await rollups.candles(symbol, Timeframe.D1, start, end, exact=True)
    assert source == "rollup" and max(frame.high) == fixed["high"]


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
    assert any(line.startswith("retention: dropped 3 column block(s)") for line in dropped)
    candles_left = "SELECT count(*) FROM market_data_all WHERE symbol = %s"
    assert await ts_store.db.query_value(candles_left, (symbol,)) == 0
    assert await ts_store.market_data.list_series(symbol) == []  # the catalog follows
    await rollups.refresh()  # after retention: must not erase what was rolled up
    after = await rollups.read(symbol, Timeframe.D1, start, end, exact=True)
    assert list(after.close) == list(before.close) and len(after) == 3


async def test_no_continuous_aggregate_is_left(ts_store: TradeStore) -> None:
    """Rollups live in market_data_rollup (migration 0029): no aggregate, and no refresh
    job of one, is left to recompute from rows that blocks replaced."""
    caggs = "SELECT count(*) FROM timescaledb_information.continuous_aggregates"
    assert await ts_store.db.query_value(caggs) == 0
    jobs = (
        "SELECT count(*) FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_refresh_continuous_aggregate'"
    )
    assert await ts_store.db.query_value(jobs) == 0


@pytest.mark.usefixtures("rows_only")  # rows, in chunks to compress
async def test_deletes_and_updates_in_compressed_chunks_mark_their_days(
    ts_store: TradeStore,
) -> None:
    """TimescaleDB gives a DELETE trigger's transition table none of the rows it deletes
    from compressed chunks: a row trigger marks deleted days instead (migration 0029)."""
    symbol, start = "TSD-USD", datetime(2024, 2, 5, tzinfo=UTC)
    await ts_store.market_data.store_candles(symbol, "1m", candles(3 * 1440, start=start))
    rollups = ts_store.rollups
    await rollups.refresh()
    await ts_store.db.query("SELECT compress_chunk(c) FROM show_chunks('market_data') c")
    dirty = "SELECT day FROM rollup_dirty WHERE symbol = %s ORDER BY day"
    # past the API: part of a compressed batch, then whole batches of a day
    await ts_store.db.execute(
        "DELETE FROM market_data WHERE symbol = %s AND timestamp >= %s AND timestamp < %s",
        (symbol, start + timedelta(hours=25), start + timedelta(hours=26)),
    )
    await ts_store.db.execute(
        "DELETE FROM market_data WHERE symbol = %s AND timestamp >= %s",
        (symbol, start + timedelta(days=2)),
    )
    await ts_store.db.execute(
        "UPDATE market_data SET volume = volume + 1 WHERE symbol = %s AND timestamp = %s",
        (symbol, start + timedelta(minutes=7)),
    )
    days = [r["day"] for r in await ts_store.db.query(dirty, (symbol,))]
    assert days == [(start + timedelta(days=d)).date() for d in range(3)]
    assert (await rollups.refresh()).days == 3
    end = start + timedelta(days=3)
    await assert_rollups_equal_resampling(
        ts_store, symbol, start, end, (Timeframe.H1, Timeframe.D1)
    )


MIGRATION_ROWS = """
INSERT INTO market_data (venue, symbol, timeframe, timestamp, open, high, low, close, volume,
                         trades_count)
SELECT 'dydx', 'MIG-USD', '1m', t, 100 + n %% 97 * 0.5, 101.25 + n %% 97 * 0.5,
       99 + n %% 97 * 0.5, 100.25 + n %% 97 * 0.5, 1 + n %% 7, n %% 5
  FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute')
       WITH ORDINALITY AS g(t, n)
"""
CANDLES_OF = (
    "SELECT timestamp, open, high, low, close, volume, trades_count, vwap FROM {}"
    " WHERE symbol = 'MIG-USD' ORDER BY timestamp"
)


async def test_the_move_from_continuous_aggregates_keeps_every_candle_and_rollup(
    ts_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0029 on a database of the former design: continuous aggregates, whose
    first day's raw chunk retention dropped, and a packed day whose rows stayed beside its
    block, in compressed chunks. Nothing of it is lost, and what a refresh recomputes is
    what they held."""
    shipped = migrator.available_migrations()
    monkeypatch.setattr(
        migrator, "available_migrations", lambda: {k: v for k, v in shipped.items() if k < "0029"}
    )
    start = datetime(2024, 4, 1, tzinfo=UTC)
    end = start + timedelta(days=4)
    settings = make_settings(ts_database, timeseries_mode="timescale")
    try:
        async with TradeStore(settings) as store:
            await store.migrate()
            db = store.db
            await db.execute(MIGRATION_ROWS, (start, end - timedelta(minutes=1)))
            for tf in TARGETS:
                refresh = sql.SQL("CALL refresh_continuous_aggregate({}, %s, %s)")
                view = sql.Literal(f"market_data_{tf.value}")
                await db.execute(refresh.format(view), (start, end))
            await db.execute(
                "SELECT drop_chunks('market_data', older_than => %s)", (start + timedelta(days=1),)
            )
            await db.execute("SELECT market_data_catalog_refresh('dydx', 'MIG-USD', '1m')")
            day3 = (start + timedelta(days=2), start + timedelta(days=3))
            await db.execute("SELECT market_data_compact('dydx', 'MIG-USD', '1m', %s, %s)", day3)
            # as TimescaleDB's policy leaves them: the migration deletes from compressed rows
            await db.query("SELECT compress_chunk(c) FROM show_chunks('market_data') c")
            rows = await db.query(CANDLES_OF.format("market_data"))
            assert len(rows) == 3 * 1440  # the packed day's rows stayed beside its block
            daily = await db.query(
                "SELECT bucket AS timestamp, open, high, low, close, volume, trades_count, vwap"
                " FROM market_data_1d WHERE symbol = 'MIG-USD' ORDER BY bucket"
            )
            assert len(daily) == 4

            monkeypatch.setattr(migrator, "available_migrations", lambda: shipped)
            applied = await store.migrate()
            assert "0029_rollups_and_blocks_as_native" in applied.applied
            in_rows = "SELECT count(*) FROM market_data WHERE symbol = 'MIG-USD'"
            assert await db.query_value(in_rows) == 2 * 1440  # the packed day is its block
            assert await db.query(CANDLES_OF.format("market_data_all")) == rows
            frame = await store.market_data.get_historical_data(
                "MIG-USD", "1m", start, end, exact=True
            )
            assert len(frame) == 3 * 1440 and frame.close[-1] == rows[-1]["close"]
            (series,) = await store.market_data.list_series("MIG-USD")
            assert series.row_count == 3 * 1440

            assert (await store.rollups.refresh()).days == 3  # the days with raw candles
            rolled = await store.rollups.read("MIG-USD", Timeframe.D1, start, end, exact=True)
            assert len(rolled) == len(daily)  # the dropped day's from its aggregate
            for name, values in rolled.columns().items():
                if name != "timestamp":
                    assert list(values) == [r[name] for r in daily], name
            later = start + timedelta(days=1)
            await assert_rollups_equal_resampling(store, "MIG-USD", later, end)
    finally:
        delete_keys(settings.redis_key_prefix)


@pytest.mark.usefixtures("rows_only")
async def test_a_refresh_never_takes_the_day_of_a_delete_not_yet_committed(
    ts_store: TradeStore,
) -> None:
    """The row trigger locks its day's marker until the delete commits (as the statement
    triggers do for inserts, migration 0016): a refresh meanwhile skips the day rather
    than recomputing it without the delete and clearing its marker."""
    symbol, start = "TSK-USD", datetime(2024, 2, 5, tzinfo=UTC)
    rows = candles(2 * 1440, start=start)
    await ts_store.market_data.store_candles(symbol, "1m", rows)
    rollups = ts_store.rollups
    await rollups.refresh()
    fixed = dict(rows[60], high=rows[60]["high"] + 5)
    await ts_store.market_data.store_candles(symbol, "1m", [fixed])  # the day is marked
    url = ts_store.settings.postgres_conninfo()
    assert url is not None
    async with await psycopg.AsyncConnection.connect(url) as deleter:
        await deleter.execute(
            "DELETE FROM market_data WHERE symbol = %s AND timestamp >= %s AND timestamp < %s",
            (symbol, start + timedelta(hours=2), start + timedelta(hours=3)),
        )
        assert (await rollups.refresh()).days == 0  # its marker is locked: skipped
        await deleter.commit()
    assert (await rollups.refresh()).days == 1
    end = start + timedelta(days=2)
    hourly = (Timeframe.H1,)
    counts = await assert_rollups_equal_resampling(ts_store, symbol, start, end, hourly)
    assert counts[Timeframe.H1] == 47  # the deleted hour is gone from both


CHUNKS = "SELECT count(*) FROM show_chunks('market_data')"


@pytest.mark.usefixtures("rows_only")
async def test_chunks_the_compaction_empties_are_dropped(ts_store: TradeStore) -> None:
    """The compaction drops the chunks it empties (the chunk of a partial day too), in
    its next round: an empty chunk costs every query of the hypertable spanning it, one
    a day for ever. Compression skips them meanwhile. A chunk that still holds rows
    stays, and an insert into a dropped range works."""
    symbol, start = "TSE-USD", datetime(2024, 2, 5, tzinfo=UTC)
    n = 2 * 1440 + 100
    rows = candles(n, start=start)
    await ts_store.market_data.store_candles(symbol, "1m", rows)
    live = candles(1, start=datetime.now(UTC).replace(second=0, microsecond=0))
    await ts_store.market_data.store_candles(symbol, "1m", live)  # an open period's row
    await ts_store.rollups.refresh()
    assert await ts_store.db.query_value(CHUNKS) == 4
    assert await ts_store.compactor.compact() == (3, n)
    assert await ts_store.db.query_value(CHUNKS) == 4  # emptied, for the next round
    compression = Compression(ts_store.db, TimeSeriesMode.TIMESCALE)
    assert await compression.compress_now() == 0  # no rows left in the closed ones
    assert await ts_store.compactor.compact() == (0, 0)
    assert await ts_store.db.query_value(CHUNKS) == 1  # the live one: its rows stay
    end = start + timedelta(days=3)
    frame = await ts_store.market_data.get_historical_data(symbol, "1m", start, end)
    assert len(frame) == n

    fixed = dict(rows[300], volume=rows[300]["volume"] + 1)
    result = await ts_store.market_data.store_candles(symbol, "1m", [fixed])  # expands a block
    assert result.rejected == []
    assert await ts_store.db.query_value(CHUNKS) == 2  # a new chunk for the correction's day
    frame = await ts_store.market_data.get_historical_data(symbol, "1m", start, end, exact=True)
    assert len(frame) == n and frame.volume[300] == fixed["volume"]


INSERT_ONE = (
    "INSERT INTO market_data (venue, symbol, timeframe, timestamp, open, high, low, close,"
    " volume) VALUES ('dydx', 'TSW-USD', '1m', %s, 1, 2, 0.5, 1.5, 3)"
)


@pytest.mark.usefixtures("rows_only")
async def test_an_empty_chunk_a_writer_is_filling_is_not_dropped(ts_store: TradeStore) -> None:
    """An emptied chunk still looks empty while a writer's insert into it has not
    committed; the compaction's lock waits for that writer (a second at most) and leaves
    the chunk, so the row is kept. Once the chunk is empty again, it goes."""
    symbol, start = "TSW-USD", datetime(2024, 2, 5, tzinfo=UTC)
    await ts_store.market_data.store_candles(symbol, "1m", candles(1440, start=start))
    await ts_store.rollups.refresh()
    await ts_store.compactor.compact()
    await ts_store.compactor.compact()  # drops what the first emptied
    assert await ts_store.db.query_value(CHUNKS) == 0
    day_before = start - timedelta(days=1)
    await ts_store.db.execute(INSERT_ONE, (day_before,))
    await ts_store.db.execute("DELETE FROM market_data WHERE timestamp = %s", (day_before,))
    assert await ts_store.db.query_value(CHUNKS) == 1  # empty
    url = ts_store.settings.postgres_conninfo()
    assert url is not None
    async with await psycopg.AsyncConnection.connect(url) as writer:
        await writer.execute(INSERT_ONE, (day_before + timedelta(minutes=1),))
        await ts_store.compactor.compact()  # its lock times out: the chunk is left
        await writer.commit()
    assert await ts_store.db.query_value(CHUNKS) == 1
    in_rows = "SELECT count(*) FROM market_data WHERE symbol = 'TSW-USD'"
    assert await ts_store.db.query_value(in_rows) == 1
    await ts_store.db.execute("DELETE FROM market_data WHERE symbol = 'TSW-USD'")
    await ts_store.compactor.compact()
    assert await ts_store.db.query_value(CHUNKS) == 0
