"""Column blocks of closed candle periods (marketdata/blocks.py): whatever is compacted
reads back exactly as it was stored, through every path that reads candles, and stays
correctable. In both time-series modes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.conftest import MODE, delete_keys, make_settings
from tests.marketdata.helpers import candles, new_symbol, uneven_candles
from tradestore import TradeStore
from tradestore.db import migrator
from tradestore.marketdata.blocks import BlockSink, blocks_query
from tradestore.marketdata.copy_stream import VALUE_COLUMNS, allocate_columns
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.reads import frame_of
from tradestore.marketdata.resample import resample
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe

# these tests pack rows (the compaction): test_ingest_blocks.py tests ingests that pack
# closed history themselves
pytestmark = pytest.mark.usefixtures("rows_only")

T0 = datetime(2024, 3, 4, tzinfo=UTC)
MINUTE_US = 60_000_000
DAYS = 3


def odd_candles(n: int, start: datetime = T0) -> list[dict[str, Any]]:
    return uneven_candles(n, start)


async def packed(store: TradeStore, data: list[dict[str, Any]]) -> str:
    """A new series of `data`, its rollups computed and its closed days packed."""
    symbol = new_symbol()
    await store.market_data.store_candles(symbol, "1m", data)
    await store.rollups.refresh()
    await store.compactor.compact()
    return symbol


async def snapshot(store: TradeStore, symbol: str) -> dict[str, Any]:
    """Everything a user reads about the series, for comparing before and after."""
    end = T0 + timedelta(days=DAYS)
    md = store.market_data
    exact = await md.get_historical_data(symbol, "1m", T0, end, exact=True)
    floats = await md.get_historical_data(symbol, "1m", T0, end)
    sliced = await md.get_historical_data(
        symbol, "1m", T0 + timedelta(hours=30), T0 + timedelta(hours=31), limit=10
    )
    latest = await md.get_latest_candles(symbol, "1m", 2000, exact=True)
    hourly = await resample(md.reader, symbol, "1h", T0, end, exact=True)
    gaps = await md.quality.gaps(symbol, "1m", T0, end)
    sql_count = await store.db.query_value(
        "SELECT count(*) FROM market_data_all WHERE symbol = %s", (symbol,)
    )
    catalog = await store.db.query_one(
        "SELECT first_ts, last_ts, row_count FROM market_data_catalog WHERE symbol = %s",
        (symbol,),
    )
    return {
        "exact": [list(exact.timestamp), list(exact.open), list(exact.close),
                  list(exact.vwap), list(exact.trades_count), list(exact.volume)],
        "floats": [list(floats.high), [str(v) for v in floats.vwap]],
        "slice": list(sliced.timestamp),
        "latest": [list(latest.timestamp), list(latest.low)],
        "hourly": [list(hourly.timestamp), list(hourly.close), list(hourly.volume)],
        "gaps": gaps,
        "sql_count": sql_count,
        "catalog": dict(catalog or {}),
    }  # fmt: skip


async def rows_in_table(store: TradeStore, symbol: str) -> int:
    return int(
        await store.db.query_value("SELECT count(*) FROM market_data WHERE symbol = %s", (symbol,))
    )


async def compress_old_chunks(store: TradeStore) -> None:
    """TimescaleDB: compress the chunks of old candles, as its policy does after 7 days
    (a block is then packed from compressed rows, which are deleted from their chunks)."""
    if MODE == "timescale":
        await store.db.query(
            "SELECT compress_chunk(c, if_not_compressed => TRUE)"
            " FROM show_chunks('market_data', older_than => now() - INTERVAL '7 days') c"
        )


async def test_compacted_history_reads_back_exactly_everywhere(fresh_store: TradeStore) -> None:
    store = fresh_store
    symbol = new_symbol()
    data = odd_candles(DAYS * 1440 - 100)  # the last day is not full
    del data[2000:2030]  # a gap inside the second day
    await store.market_data.store_candles(symbol, "1m", data)
    recent = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    await store.market_data.store_candles(symbol, "1m", candles(30, start=recent))
    await store.rollups.refresh()
    await compress_old_chunks(store)
    before = await snapshot(store, symbol)

    blocks, moved = await store.compactor.compact()
    assert (blocks, moved) == (DAYS, len(data))  # the recent candles stay rows
    assert await rows_in_table(store, symbol) == 30
    assert await snapshot(store, symbol) == before
    again = await store.compactor.compact()
    assert again == (0, 0)  # nothing left to pack
    assert await store.compactor.plan() == []  # and the plan says so
    hourly = await store.market_data.get_historical_data(
        symbol, "1h", T0, T0 + timedelta(days=1), exact=True
    )  # served by the rollups, which the compaction left as they were
    assert hourly.close[0] == data[59]["close"] and len(hourly) == 24
    if MODE != "timescale":  # there the chunks were compressed first
        march = "SELECT pg_total_relation_size('market_data_p20240301')"
        assert await store.db.query_value(march) <= 65536  # emptied, truncated: space back
    status = await store.compactor.status()
    assert status.candles >= len(data) and status.bytes_per_candle is not None


async def test_a_read_begun_before_a_compaction_keeps_its_rows(fresh_store: TradeStore) -> None:
    """A read whose snapshot was taken before a round moved its rows into a block sees
    the rows, not the block: the round must not truncate (native) or drop (TimescaleDB)
    the emptied piece under it, as both ignore snapshots. The next round does."""
    store, symbol = fresh_store, new_symbol()
    await store.market_data.store_candles(symbol, "1m", odd_candles(1440))
    await store.rollups.refresh()
    url = store.settings.postgres_conninfo()
    assert url is not None
    count = sql.SQL("SELECT count(*) FROM market_data WHERE symbol = {}").format(symbol)
    async with await psycopg.AsyncConnection.connect(url) as reader:
        await reader.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        await reader.execute("SELECT count(*) FROM market_data_catalog")  # its snapshot
        assert await store.compactor.compact() == (1, 1440)
        assert await (await reader.execute(count)).fetchone() == (1440,)
    assert await store.db.query_value(count) == 0  # in the block now


@pytest.mark.native_only  # nothing was packed on TimescaleDB before migration 0027
@pytest.mark.parametrize("migration", ["0024_block_slots", "0025_block_frame_of_reference"])
async def test_blocks_packed_before_a_layout_migration_read_back_the_same(
    empty_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch, migration: str
) -> None:
    """Blocks written before a migration that changes their layout (0024: a bitmap of
    slots for the column of timestamps; 0025: a frame of reference for each value
    column) are converted by it: every read gives what the rows gave, gaps and SQL
    included."""
    shipped = migrator.available_migrations()
    monkeypatch.setattr(
        migrator,
        "available_migrations",
        lambda: {k: v for k, v in shipped.items() if k < migration},
    )
    settings = make_settings(empty_database())
    symbol = new_symbol()
    data = odd_candles(DAYS * 1440 - 100)
    del data[2000:2030]  # a gap inside the second day
    async with TradeStore(settings) as store:
        await store.migrate()
        await store.market_data.store_candles(symbol, "1m", data)
        await store.rollups.refresh()
        before = await snapshot(store, symbol)
        await store.db.execute(
            "SELECT market_data_compact('dydx', %s, '1m', %s, %s)",
            (symbol, T0 + timedelta(days=1), T0 + timedelta(days=2)),
        )
        monkeypatch.setattr(migrator, "available_migrations", lambda: shipped)
        applied = await store.migrate()
        assert migration in applied.applied
        assert await store.db.query_value("SELECT count(*) FROM market_data_block") == 1
        assert await snapshot(store, symbol) == before
    delete_keys(settings.redis_key_prefix)


async def test_block_stream_decodes_the_same_however_it_is_cut(fresh_store: TradeStore) -> None:
    """BlockSink reads a block from its COPY message in place; a stream cut anywhere else
    (a proxy, another driver) decodes to the same candles, and a cut-off one is an error."""
    store = fresh_store
    symbol = await packed(store, odd_candles(DAYS * 1440 - 100))
    query = blocks_query(DEFAULT_VENUE, symbol, Timeframe.M1, T0, T0 + timedelta(days=DAYS))
    messages: list[bytes] = []
    async with store.db.connection() as conn, conn.cursor() as cur:
        copy = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)
        async with cur.copy(copy) as stream:
            messages += [bytes(m) async for m in stream]
    whole = b"".join(messages)
    rng = np.random.default_rng(3)
    for exact in (False, True):
        by_message = BlockSink(10, step_us=MINUTE_US, exact=exact)  # too small: it grows
        for message in messages:
            by_message.feed(message)
        expected = by_message.finish()
        assert len(expected["timestamp"]) == DAYS * 1440 - 100
        cuts = np.sort(rng.choice(len(whole), 40, replace=False))
        by_cuts = BlockSink(DAYS * 1440, step_us=MINUTE_US, exact=exact)
        for piece in np.split(np.frombuffer(whole, np.uint8), cuts):
            by_cuts.feed(piece.tobytes())
        got = by_cuts.finish()
        for name, values in expected.items():
            np.testing.assert_array_equal(got[name], values)
    truncated = BlockSink(10, step_us=MINUTE_US, exact=False)
    truncated.feed(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="truncated"):
        truncated.finish()


def test_to_pandas_keeps_the_read_block_and_equals_the_copied_frame() -> None:
    """A read's float columns go to pandas as one block without a copy; the frame is the
    one built column by column (same values, order, dtypes)."""
    n = 1000
    columns = allocate_columns(n, exact=False)
    rng = np.random.default_rng(1)
    for name in VALUE_COLUMNS:
        columns[name][:] = rng.random(n)
    columns["timestamp"][:] = np.datetime64("2024-01-01") + np.arange(n) * np.timedelta64(1, "m")
    columns["trades_count"][:] = rng.integers(-1, 9, n)
    shared = frame_of(
        {k: v[: n - 3] for k, v in columns.items()}, "BTC-USD", Timeframe.M1, exact=False
    )
    copied = CandleFrame(**{**shared.__dict__, "open": shared.open.copy()})
    ours, theirs = shared.to_pandas(), copied.to_pandas()
    assert np.shares_memory(ours["high"].to_numpy(), columns["high"])
    assert not np.shares_memory(theirs["high"].to_numpy(), columns["high"])
    assert list(ours.columns) == list(theirs.columns)
    assert ours.equals(theirs) and (ours.dtypes == theirs.dtypes).all()
    assert ours["trades_count"].isna().sum() == (columns["trades_count"][: n - 3] < 0).sum()


async def test_reads_racing_compaction_and_expansion_see_every_candle_once(
    fresh_store: TradeStore,
) -> None:
    """While a writer expands a packed day (a correction) and packs it again, over
    and over, every read of the history returns each candle exactly once."""
    store = fresh_store
    data = odd_candles(DAYS * 1440)
    symbol = await packed(store, data)
    end = T0 + timedelta(days=DAYS)
    done = asyncio.Event()

    async def churn() -> None:
        for i in range(25):
            fixed = dict(data[1440 + i], volume=data[1440 + i]["volume"] + 1)
            await store.market_data.store_candles(symbol, "1m", [fixed])  # expands day 2
            await store.rollups.refresh()
            await store.compactor.compact()  # packs it again
        done.set()

    async def read() -> int:
        reads = 0
        while not done.is_set():
            for frame in (
                await store.market_data.get_historical_data(symbol, "1m", T0, end),
                await store.market_data.get_latest_candles(symbol, "1m", len(data)),
            ):
                stamps = frame.timestamp
                assert len(stamps) == len(data) and (np.diff(stamps.astype(np.int64)) > 0).all()
            reads += 1
        return reads

    _, reads = await asyncio.gather(churn(), read())
    assert reads > 5


async def test_a_correction_of_compacted_history_is_applied_and_rolled_up(
    fresh_store: TradeStore,
) -> None:
    store = fresh_store
    data = odd_candles(DAYS * 1440)
    symbol = await packed(store, data)
    fixed = dict(data[1500], close=data[1500]["close"] + Decimal("0.5"))
    fixed["high"] = max(fixed["high"], fixed["close"])
    result = await store.market_data.store_candles(symbol, "1m", [fixed])
    assert (result.inserted, result.updated) == (0, 1)
    assert await rows_in_table(store, symbol) == 1440  # day 2
    end = T0 + timedelta(days=DAYS)
    frame = await store.market_data.get_historical_data(symbol, "1m", T0, end, exact=True)
    assert len(frame) == len(data) and frame.close[1500] == fixed["close"]
    await store.rollups.refresh()
    hour = T0 + timedelta(minutes=1500 - 1500 % 60)
    rolled = await store.market_data.get_historical_data(
        symbol, "1h", hour, hour + timedelta(hours=1), exact=True
    )
    assert rolled.high[0] >= fixed["close"]
    assert await store.compactor.compact() == (1, 1440)  # packed again next round
    assert await rows_in_table(store, symbol) == 0


async def test_a_day_waiting_for_its_rollups_is_not_packed(fresh_store: TradeStore) -> None:
    store = fresh_store
    symbol = new_symbol()
    await store.market_data.store_candles(symbol, "1m", odd_candles(DAYS * 1440))
    # the third day's rollups are pending: that day is not packed yet
    await store.db.execute(
        "INSERT INTO rollup_dirty (venue, symbol, day) VALUES ('dydx', %s, %s)"
        " ON CONFLICT DO NOTHING",
        (symbol, (T0 + timedelta(days=2)).date()),
    )
    await store.db.execute(
        "DELETE FROM rollup_dirty WHERE symbol = %s AND day < %s",
        (symbol, T0.date() + timedelta(days=2)),
    )
    assert await store.compactor.compact() == (2, 2880)
    assert await rows_in_table(store, symbol) == 1440
    await store.rollups.refresh()
    assert await store.compactor.compact() == (1, 1440)  # its rollups done, packed


async def test_delete_and_rescore_with_blocks(fresh_store: TradeStore) -> None:
    store = fresh_store
    symbol = new_symbol()
    await store.market_data.store_candles(symbol, "1m", odd_candles(DAYS * 1440))
    await store.rollups.refresh()
    assert await store.compactor.compact() == (DAYS, DAYS * 1440)
    deleted = await store.market_data.delete(
        symbol, "1m", T0 + timedelta(hours=12), T0 + timedelta(hours=36)
    )
    assert deleted == 24 * 60
    end = T0 + timedelta(days=DAYS)
    frame = await store.market_data.get_historical_data(symbol, "1m", T0, end)
    assert len(frame) == DAYS * 1440 - 24 * 60
    catalog = await store.db.query_value(
        "SELECT row_count FROM market_data_catalog WHERE symbol = %s", (symbol,)
    )
    assert catalog == len(frame)
    changed = await store.market_data.quality.rescore(symbol, "1m", T0, end)
    assert changed >= 0
    assert len(await store.market_data.get_historical_data(symbol, "1m", T0, end)) == len(frame)


async def test_blocks_are_smaller_than_rows(fresh_store: TradeStore) -> None:
    """Exact values, a fraction of the rows' bytes (the bench measures it against Parquet)."""
    store = fresh_store
    symbol = new_symbol()
    await store.market_data.store_candles(symbol, "1m", odd_candles(2 * 1440, start=T0))
    await store.rollups.refresh()
    await store.compactor.compact()
    size = await store.db.query_value(
        "SELECT sum(pg_column_size(b.*)) / sum(row_count) FROM market_data_block b"
        " WHERE symbol = %s",
        (symbol,),
    )
    assert size is not None and size < 80  # rows take ~200 bytes a candle with index
    frame = await store.market_data.get_historical_data(
        symbol, "1m", T0, T0 + timedelta(days=2), exact=True
    )
    assert np.all(np.diff(frame.timestamp.astype("int64")) == 60_000_000)


async def test_archive_export_and_retention_include_blocks(
    fresh_store: TradeStore, tmp_path: Any
) -> None:
    store = fresh_store
    from tradestore.ops.market_archive import ArchiveRange

    symbol = new_symbol()
    start = datetime(2019, 5, 1, tzinfo=UTC)
    await store.market_data.store_candles(symbol, "1m", candles(3 * 1440, start=start))
    await store.rollups.refresh()
    await store.compactor.compact()
    span = ArchiveRange.of(start, start + timedelta(days=2))
    manifest = await store.market_archive.export(span, tmp_path)
    assert manifest.rows >= 2 * 1440  # other tests' candles of those days count too
    await store.market_data.delete(symbol, "1m")
    assert await store.market_archive.import_(tmp_path / f"{span.label}.manifest.json") > 0
    frame = await store.market_data.get_historical_data(
        symbol, "1m", start, start + timedelta(days=3)
    )
    assert len(frame) == 2 * 1440
    await store.rollups.refresh()
    assert (await store.compactor.compact())[0] == 2  # the imported days, packed again
    await store.retention.set_policy("market_data", timedelta(days=365))
    await store.retention.run()
    assert await store.db.query_value("SELECT count(*) FROM market_data_block") == 0
    catalog = await store.db.query_one(
        "SELECT row_count FROM market_data_catalog WHERE symbol = %s", (symbol,)
    )
    assert catalog is None  # the catalog follows: nothing of the series is left


async def test_range_reads_of_rows_and_blocks_use_their_indexes(store: TradeStore) -> None:
    """market_data_range (resampling, gaps, export) is inlined: each half by its key (on
    TimescaleDB, each chunk of the rows' half by its own)."""
    rows = await store.db.query(
        "EXPLAIN SELECT count(*) FROM market_data_range('dydx', 'BTC-USD', '1m',"
        " TIMESTAMPTZ '2024-03-01', TIMESTAMPTZ '2024-03-02')"
    )
    plan = "\n".join(r["QUERY PLAN"] for r in rows)
    assert "Function Scan on market_data_range" not in plan
    assert "market_data_block_pkey" in plan
    assert "Index" in plan.split("market_data_block")[0]  # the rows' half too


CANDLE_COLUMNS = (
    "venue, symbol, timeframe, timestamp, open, high, low, close, volume, trades_count, vwap,"
    " data_source, data_quality_score, created_at"
)


async def test_sql_reads_of_blocks_give_their_rows_column_for_column(
    fresh_store: TradeStore,
) -> None:
    """market_data_block_rows, under market_data_range, market_data_all, resampling, the
    rollup refresh, gaps and export, gives exactly the rows its blocks were packed from:
    every column, full and partial days with gaps, offsets of every width (0, 1, 2, 4 and
    8 bytes), one source or several in a block, in any session time zone."""
    store = fresh_store
    data = odd_candles(DAYS * 1440 - 100)  # the last day is not full
    del data[2000:2030]  # a gap inside the second day
    for i, row in enumerate(data):
        row["close"] += Decimal(i * 7919 % 100_000) / 10**8  # 4-byte offsets
        if i < 1440:
            row["volume"] = Decimal(3)  # one value: the header alone
        elif row["trades_count"] is not None:
            row["trades_count"] %= 100  # 1-byte offsets from the second day
    symbol = new_symbol()
    await store.market_data.store_candles(symbol, "1m", data)
    corrected = [dict(row, high=row["high"] + 1) for row in data[1500:1600]]
    await store.market_data.store_candles(symbol, "1m", corrected, source="binance")
    expected = await store.db.query(
        f"SELECT {CANDLE_COLUMNS} FROM market_data WHERE symbol = %s ORDER BY timestamp",
        (symbol,),
    )
    await store.rollups.refresh()
    assert (await store.compactor.compact())[0] == DAYS
    widths = await store.db.query_value(
        "SELECT array_agg(DISTINCT get_byte(c, 0) ORDER BY get_byte(c, 0))"
        " FROM market_data_block, unnest(ARRAY[open, high, low, close, volume, trades_count,"
        " vwap]) AS c WHERE symbol = %s",
        (symbol,),
    )
    assert widths == [0, 1, 2, 4, 8]
    end = T0 + timedelta(days=DAYS)
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        async with store.db.transaction() as conn:
            await conn.execute(sql.SQL("SET LOCAL TimeZone = {}").format(sql.Literal(zone)))
            cur = await conn.execute(
                f"SELECT {CANDLE_COLUMNS} FROM market_data_block_rows(%s, %s, '1m', %s, %s)"
                " ORDER BY timestamp",
                (DEFAULT_VENUE, symbol, T0, end),
            )
            got = await cur.fetchall()
        assert len(got) == len(data) and got == expected, zone
