"""Data lifecycle on plain PostgreSQL: rollups, retention, archive, Parquet, maintain."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import numpy as np
import psycopg
import pyarrow.parquet as pq
import pytest

from tests.conftest import MODE
from tests.marketdata.helpers import assert_rollups_equal_resampling, candles, uneven_candles
from tests.trading.helpers import new_strategy
from tradestore import Conflict, TradeStore, ValidationError
from tradestore.analytics.report import build_report
from tradestore.db.partitions import partitions_of
from tradestore.marketdata.binary import NO_TRADES
from tradestore.marketdata.rollups import TARGETS
from tradestore.ops.archive import TradeArchiver
from tradestore.ops.maintenance import LOCK_KEY
from tradestore.ops.market_archive import ArchiveRange
from tradestore.timeframes import Timeframe
from tradestore.trading.trades import TradeFilters

T0 = datetime(2024, 5, 6, 22, 0, tzinfo=UTC)


@pytest.fixture
def fresh(fresh_store: TradeStore) -> TradeStore:
    return fresh_store


async def assert_fresh_rollups_equal_resampling(store: TradeStore, symbol: str) -> None:
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=3)
    assert await store.rollups.is_fresh(symbol, start, end)
    await assert_rollups_equal_resampling(store, symbol, start, end)


@pytest.mark.usefixtures("rows_only")  # the triggers' way: rows marking their days
async def test_rollups_follow_inserts_late_corrections_and_deletes(fresh: TradeStore) -> None:
    symbol = "ROLL-USD"
    rows = candles(2000, start=T0)  # crosses two UTC midnights
    await fresh.market_data.store_candles(symbol, "1m", rows)
    refreshed = await fresh.rollups.refresh()
    assert refreshed.days == 3
    await assert_fresh_rollups_equal_resampling(fresh, symbol)
    # a late correction of an old candle, and a deletion: only that day is redone
    fixed = dict(rows[5], high=rows[5]["high"] + Decimal("7.5"))
    await fresh.market_data.store_candles(symbol, "1m", [fixed])
    await fresh.db.execute(
        "DELETE FROM market_data WHERE symbol = %s AND timestamp = %s",
        (symbol, rows[1500]["timestamp"]),
    )
    rollups = fresh.rollups
    assert not await rollups.is_fresh(symbol, T0, T0 + timedelta(days=2))
    stale, source = await rollups.candles(symbol, TARGETS[-1], T0, T0 + timedelta(days=2))
    assert source == "resample"  # not fresh: served by resampling meanwhile
    assert (await rollups.refresh()).days == 2
    await assert_fresh_rollups_equal_resampling(fresh, symbol)
    fresh_frame, source = await rollups.candles(symbol, TARGETS[-1], T0, T0 + timedelta(days=2))
    assert source == "rollup"
    np.testing.assert_array_equal(fresh_frame.high, stale.high)
    # the plain read API serves coarse timeframes that are not stored natively
    hourly = await fresh.market_data.get_historical_data(symbol, "1h", T0, T0 + timedelta(days=2))
    direct = await fresh.market_data.resample(symbol, "1h", T0, T0 + timedelta(days=2))
    assert len(hourly) == len(direct) > 0
    np.testing.assert_array_equal(hourly.close, direct.close)


async def test_rollups_composed_from_5m_buckets_equal_resampling_to_the_last_digit(
    fresh: TradeStore,
) -> None:
    """The coarse rollups are aggregated from the 5m ones: with vwap known in places, trade
    counts unknown in places (a whole hour of them), a 5m bucket without volume (no
    vwap) and prices of 8 decimals, each still equals a resample of the 1m candles."""
    symbol = "COMPOSE-USD"
    rows = uneven_candles(2000, start=T0)  # crosses two UTC midnights
    for row in rows[60:120]:  # 23:00 to midnight: an hour, a 4h tail of unknown trades
        row["trades_count"] = None
    for row in rows[300:305]:  # 03:00 to 03:05: a 5m bucket without volume
        row["volume"] = Decimal(0)
    result = await fresh.market_data.store_candles(symbol, "1m", rows)
    assert result.inserted == len(rows) and not result.rejected
    assert (await fresh.rollups.refresh()).days == 3
    await assert_fresh_rollups_equal_resampling(fresh, symbol)
    day = await fresh.rollups.read(
        symbol, Timeframe.H1, T0 + timedelta(hours=1), T0 + timedelta(hours=2), exact=True
    )
    assert list(day.trades_count) == [NO_TRADES]  # unknown all hour: unknown, not 0


async def test_a_refresh_never_consumes_the_marker_of_an_uncommitted_ingest(
    fresh: TradeStore,
) -> None:
    symbol = "RACE-USD"
    rows = candles(120, start=T0 + timedelta(hours=3))  # one UTC day
    await fresh.market_data.store_candles(symbol, "1m", rows)
    rollups = fresh.rollups
    await rollups.refresh()
    await fresh.market_data.store_candles(
        symbol, "1m", [dict(rows[0], volume=rows[0]["volume"] + 1)]
    )
    url = fresh.settings.postgres_conninfo()
    assert url is not None
    async with await psycopg.AsyncConnection.connect(url) as ingest:
        await ingest.execute(  # a correction of that day, not committed yet
            "UPDATE market_data SET high = high + 5 WHERE symbol = %s AND timestamp = %s",
            (symbol, rows[10]["timestamp"]),
        )
        await rollups.refresh()  # runs meanwhile: it must leave that day's marker alone
        await ingest.commit()
    start, end = rows[0]["timestamp"], rows[-1]["timestamp"]
    assert not await rollups.is_fresh(symbol, start, end)  # still marked: not done yet
    await rollups.refresh()
    await assert_fresh_rollups_equal_resampling(fresh, symbol)


async def test_a_day_whose_volume_overflows_its_column_never_poisons_rollups(
    fresh: TradeStore,
) -> None:
    symbol = "HUGE-USD"
    rows = [dict(r, volume=Decimal("9999999999.5")) for r in candles(1440, start=T0)]
    assert not (await fresh.market_data.store_candles(symbol, "1m", rows)).rejected
    await fresh.market_data.store_candles("SMALL-USD", "1m", candles(60, start=T0))
    rollups = fresh.rollups
    await rollups.refresh()  # the huge day does not fail the batch (nor the small series)
    start, end = T0, T0 + timedelta(days=2)
    day = await rollups.read(symbol, Timeframe.D1, start, end, exact=True)
    resampled = await fresh.market_data.resample(symbol, "1d", start, end, exact=True)
    cap = Decimal("92233720368.54775807")  # the int8 transport's limit
    assert list(day.volume) == list(resampled.volume) and max(day.volume) == cap
    five = await rollups.read(symbol, Timeframe.M5, start, end, exact=True)
    assert five.volume[1] == Decimal("9999999999.5") * 5  # below the limit: exact
    assert len(await rollups.read("SMALL-USD", Timeframe.H1, start, end)) == 1


@pytest.mark.native_only  # partitions
async def test_retention_drops_only_old_partitions(fresh: TradeStore) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=45)
    for when in (old, now - timedelta(days=2), now):
        partitions = fresh.partitions
        await partitions.ensure("system_logs", when, when)
        await fresh.db.execute(
            "INSERT INTO system_logs (timestamp, level, category, message) "
            "VALUES (%s, 'INFO', 'TEST', 'x')",
            (when,),
        )
    plan = await fresh.retention.plan()
    assert [a.target for a in plan] == [f"system_logs_p{old:%Y%m%d}"]
    await fresh.retention.run()
    left = await fresh.db.query_value("SELECT count(*) FROM system_logs")
    assert left == 2
    names = {p.name for p in await partitions_of(fresh.db, "system_logs")}
    assert f"system_logs_p{old:%Y%m%d}" not in names and f"system_logs_p{now:%Y%m%d}" in names


@pytest.mark.native_only  # partitions
async def test_a_drop_behind_a_long_reader_does_not_block_the_table(fresh: TradeStore) -> None:
    """DETACH waits for a long reader of the parent; while it waits, every new query of
    the table would queue behind it. It gives way after its lock timeout instead, and
    drops the partition once the reader is done."""
    now = datetime.now(UTC)
    old = now - timedelta(days=45)
    await fresh.partitions.ensure("system_logs", old, old)
    url = fresh.settings.postgres_conninfo()
    assert url is not None
    async with await psycopg.AsyncConnection.connect(url) as reader:
        await reader.execute("SELECT count(*) FROM system_logs")  # holds its lock until commit
        drop = asyncio.ensure_future(fresh.retention.run())
        await asyncio.sleep(0.3)  # the drop is waiting for the reader now
        started = asyncio.get_running_loop().time()
        await fresh.db.execute(
            "INSERT INTO system_logs (timestamp, level, category, message) "
            "VALUES (now(), 'INFO', 'TEST', 'not blocked')"
        )
        waited = asyncio.get_running_loop().time() - started
        await asyncio.sleep(0.5)
        await reader.commit()
        done = await drop
    assert waited < 1.5, f"a writer waited {waited:.1f} s behind the DETACH"
    assert done == [f"retention: dropped system_logs_p{old:%Y%m%d}"]


async def test_market_data_retention_keeps_the_catalog_true(fresh: TradeStore) -> None:
    start = (datetime.now(UTC) - timedelta(days=500)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    await fresh.market_data.store_candles(  # straddles the one-year cutoff
        "RET-USD", "1d", candles(480, start=start, step_s=86_400)
    )
    await fresh.retention.set_policy("market_data", timedelta(days=365))
    await fresh.maintenance.run()
    truth = await fresh.db.query_one(
        "SELECT count(*) AS n, min(timestamp) AS first FROM market_data WHERE symbol = 'RET-USD'"
    )
    series = (await fresh.market_data.list_series("RET-USD"))[0]
    assert truth is not None and 0 < series.row_count == truth["n"] < 480
    assert series.first_ts == truth["first"]


@dataclass
class Book:
    """Trades of one strategy: finished long ago (to archive), and what must stay."""

    strategy_id: UUID
    closed_old: list[UUID] = field(default_factory=list)  # closed three years ago
    open_old: list[UUID] = field(default_factory=list)  # entered long ago, still open
    closed_recently: list[UUID] = field(default_factory=list)  # entered long ago
    order_of_open: UUID | None = None
    order_of_closed: UUID | None = None


async def _trade(store: TradeStore, strategy_id: UUID, entry_time: datetime) -> UUID:
    trade = await store.trades.open(
        {
            "strategy_id": strategy_id,
            "symbol": "BTC-USD",
            "side": "BUY",
            "entry_price": "100",
            "quantity": "1",
            "entry_time": entry_time,
        }
    )
    return trade.id


async def _order_of(store: TradeStore, strategy_id: UUID, trade_id: UUID) -> UUID:
    order = await store.orders.create(
        {
            "strategy_id": strategy_id,
            "symbol": "BTC-USD",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "1",
            "trade_id": trade_id,
        }
    )
    return order.id


async def _book(store: TradeStore, closed_old: int, *, open_old: int = 0) -> Book:
    strategy = await new_strategy(store)
    book = Book(strategy.id)
    start = datetime.now(UTC) - timedelta(days=365 * 3)
    for i in range(closed_old):
        trade_id = await _trade(store, strategy.id, start + timedelta(hours=i))
        await store.trades.close(
            trade_id,
            exit_price="101",
            exit_reason="tp",
            exit_time=start + timedelta(hours=i, minutes=30),
        )
        book.closed_old.append(trade_id)
    for i in range(open_old):
        book.open_old.append(await _trade(store, strategy.id, start + timedelta(hours=i)))
        recent = await _trade(store, strategy.id, start + timedelta(hours=i))
        await store.trades.close(recent, exit_price="99", exit_reason="sl")  # closed now
        book.closed_recently.append(recent)
    if book.open_old:
        book.order_of_open = await _order_of(store, strategy.id, book.open_old[0])
    if book.closed_old:
        book.order_of_closed = await _order_of(store, strategy.id, book.closed_old[0])
    return book


async def test_archive_moves_only_finished_trades_and_open_positions_stay(
    fresh: TradeStore,
) -> None:
    book = await _book(fresh, 30, open_old=10)
    result = await TradeArchiver(fresh.db).run(batch=7)
    assert result.status == "DONE" and result.moved == 30, result
    archived = {r["id"] for r in await fresh.db.query("SELECT id FROM trades_archive")}
    assert archived == set(book.closed_old)
    for trade_id in book.open_old + book.closed_recently:  # still live, still closable
        assert (await fresh.trades.get(trade_id)).id == trade_id
    closed = await fresh.trades.close(book.open_old[0], exit_price="105", exit_reason="tp")
    assert closed.status.value == "CLOSED"
    assert book.order_of_open is not None and book.order_of_closed is not None
    assert (await fresh.orders.get(book.order_of_open)).trade_id == book.open_old[0]
    order = await fresh.orders.get(book.order_of_closed)
    assert order.trade_id is None
    assert order.metadata.get("archived_trade_id") == str(book.closed_old[0])


async def test_archived_trades_stay_readable_in_history_and_reports(fresh: TradeStore) -> None:
    book = await _book(fresh, 12, open_old=2)
    filters = TradeFilters(strategy_id=book.strategy_id)
    before = await fresh.strategies.performance(book.strategy_id)
    await TradeArchiver(fresh.db).run()
    live = await fresh.trades.history(filters)
    everything = await fresh.trades.history(filters, include_archived=True)
    assert live.total == 4 and everything.total == 16
    assert {t.id for t in everything.trades} >= set(book.closed_old)
    after = await fresh.strategies.performance(book.strategy_id)
    assert after == before and after.total_trades == 14  # 12 archived + 2 closed recently
    strategy = await fresh.strategies.get(book.strategy_id)
    report = await build_report(fresh.db, fresh.strategies, strategy)
    assert report.summary["closed trades"] == 14


async def test_archive_age_comes_from_option_then_config_then_default(fresh: TradeStore) -> None:
    await _book(fresh, 5)  # closed three years ago
    plan = [a for a in await fresh.maintenance.plan() if a.task == "archive"]
    assert plan and plan[0].target == "5 closed or cancelled trade(s)"
    assert "open trades stay" in plan[0].detail
    await fresh.config.set("archive.after_days", "soon")
    with pytest.raises(ValidationError, match=r"archive\.after_days"):
        await fresh.maintenance.plan()
    await fresh.config.delete("archive.after_days")
    await fresh.config.set("archive.after_days", 2000)
    assert [a for a in await fresh.maintenance.plan() if a.task == "archive"] == []
    override = timedelta(days=365)
    planned = await fresh.maintenance.plan(archive_after=override)
    assert [a.task for a in planned if a.task == "archive"] == ["archive"]


async def test_archive_under_concurrent_inserts_moves_exactly_the_old(fresh: TradeStore) -> None:
    book = await _book(fresh, 60)

    async def keep_writing() -> int:
        for _ in range(40):
            await _trade(fresh, book.strategy_id, datetime.now(UTC))
        return 40

    writer = asyncio.ensure_future(keep_writing())
    result = await TradeArchiver(fresh.db).run(batch=7)
    new = await writer
    assert result.status == "DONE" and result.moved == 60, result
    assert await fresh.db.query_value("SELECT count(*) FROM trades_archive") == 60
    assert await fresh.db.query_value("SELECT count(*) FROM trades") == new


async def test_interrupted_archive_resumes(fresh: TradeStore) -> None:
    await _book(fresh, 50)
    archiver = TradeArchiver(fresh.db)
    first = await archiver.run(batch=10, max_batches=2)  # "crashes" after two batches
    assert first.status == "RUNNING" and first.moved == 20
    second = await archiver.run(batch=10)
    assert second.resumed and second.run_id == first.run_id
    assert second.status == "DONE" and second.moved == 50
    runs = await fresh.db.query("SELECT status, moved FROM archive_runs")
    assert [(r["status"], r["moved"]) for r in runs] == [("DONE", 50)]


MARCH = ArchiveRange.of(datetime(2022, 3, 1, tzinfo=UTC), datetime(2022, 4, 1, tzinfo=UTC))


async def test_parquet_round_trip_of_a_month(fresh: TradeStore, tmp_path: Path) -> None:
    rows = candles(3000, start=datetime(2022, 3, 1, tzinfo=UTC))
    await fresh.market_data.store_candles("PQ-USD", "1m", rows)
    before = await fresh.market_data.get_historical_data(
        "PQ-USD", "1m", rows[0]["timestamp"], rows[-1]["timestamp"], exact=True
    )
    archive = fresh.market_archive
    manifest = await archive.export(MARCH, tmp_path, drop_after=True)
    assert manifest.rows == 3000 and len(manifest.sha256) == 64
    assert (tmp_path / f"{MARCH.label}.manifest.json").exists()
    assert await fresh.market_data.list_series("PQ-USD") == []
    assert await fresh.db.query_value("SELECT count(*) FROM market_data") == 0
    restored = await archive.import_(tmp_path / f"{MARCH.label}.manifest.json")
    assert restored == 3000
    after = await fresh.market_data.get_historical_data(
        "PQ-USD", "1m", rows[0]["timestamp"], rows[-1]["timestamp"], exact=True
    )
    for name, values in before.columns().items():
        assert list(after.columns()[name]) == list(values), name
    assert (await fresh.market_data.list_series("PQ-USD"))[0].row_count == 3000


async def test_export_of_a_range_takes_exactly_its_rows_and_keeps_them(
    fresh: TradeStore, tmp_path: Path
) -> None:
    rows = candles(3000, start=datetime(2022, 3, 31, 12, tzinfo=UTC))  # into April
    await fresh.market_data.store_candles("PQ-USD", "1m", rows)
    span = ArchiveRange.of(
        datetime(2022, 3, 31, 18, tzinfo=UTC), datetime(2022, 4, 1, 6, tzinfo=UTC)
    )
    manifest = await fresh.market_archive.export(span, tmp_path)
    assert manifest.rows == 12 * 60
    table = pq.read_table(tmp_path / manifest.file)
    stamps = table.column("timestamp").to_pylist()
    assert min(stamps) == span.start and max(stamps) == span.end - timedelta(minutes=1)
    assert await fresh.db.query_value("SELECT count(*) FROM market_data_all") == 3000


async def test_a_drop_takes_whole_partitions_or_chunks_only(
    fresh: TradeStore, tmp_path: Path
) -> None:
    rows = candles(3000, start=datetime(2022, 3, 1, tzinfo=UTC))
    await fresh.market_data.store_candles("PQ-USD", "1m", rows)
    half = ArchiveRange.of(datetime(2022, 3, 1, 12, tzinfo=UTC), datetime(2022, 4, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="only partly in the range"):
        await fresh.market_archive.export(half, tmp_path, drop_after=True)
    assert await fresh.db.query_value("SELECT count(*) FROM market_data_all") == 3000


async def test_rollups_outlive_a_dropped_range(fresh: TradeStore, tmp_path: Path) -> None:
    start = datetime(2022, 3, 1, tzinfo=UTC)
    await fresh.market_data.store_candles("PQ-USD", "1m", candles(3 * 1440, start=start))
    rollups = fresh.rollups
    await rollups.refresh()
    before = await rollups.read(
        "PQ-USD", Timeframe.D1, start, start + timedelta(days=3), exact=True
    )
    await fresh.market_archive.export(MARCH, tmp_path, drop_after=True)
    await rollups.refresh()
    after = await rollups.read("PQ-USD", Timeframe.D1, start, start + timedelta(days=3), exact=True)
    assert len(after) == len(before) == 3
    for name, values in before.columns().items():
        assert list(after.columns()[name]) == list(values), name


@pytest.mark.usefixtures("rows_only")  # in a chunk, not a block (a chunk is what it locks)
async def test_a_backfill_during_export_and_drop_is_never_lost(
    fresh: TradeStore, tmp_path: Path
) -> None:
    rows = candles(500, start=datetime(2022, 3, 1, tzinfo=UTC))
    await fresh.market_data.store_candles("PQ-USD", "1m", rows)
    # a late row of a day (chunk) and month (partition) that already exist
    late = candles(1, start=datetime(2022, 3, 1, 12, tzinfo=UTC), base="50.5")[0]
    url = fresh.settings.postgres_conninfo()
    assert url is not None
    async with await psycopg.AsyncConnection.connect(url) as writer:
        # a backfill row of that range, committed while the export runs
        await writer.execute(
            "INSERT INTO market_data (symbol, timeframe, timestamp, open, high, low, close, "
            "volume) VALUES ('PQ-USD', '1m', %(timestamp)s, %(open)s, %(high)s, %(low)s, "
            "%(close)s, %(volume)s)",
            late,
        )
        archive = fresh.market_archive
        export = asyncio.ensure_future(archive.export(MARCH, tmp_path, drop_after=True))
        await asyncio.sleep(0.3)
        assert not export.done()  # it waits for the writer, rather than racing it
        await writer.commit()
        manifest = await export
    assert manifest.rows == 501  # the late row is in the file, not dropped unseen
    assert await fresh.db.query_value("SELECT count(*) FROM market_data") == 0


async def test_a_manifest_cannot_point_outside_its_folder(
    fresh: TradeStore, tmp_path: Path
) -> None:
    manifest = {
        "table": "market_data",
        "partition": "market_data_p20220301",
        "range_start": "2022-03-01T00:00:00+00:00",
        "range_end": "2022-04-01T00:00:00+00:00",
        "rows": 1,
        "sha256": "0" * 64,
        "file": "../../etc/hostname",
        "exported_at": "2022-05-01T00:00:00+00:00",
    }
    path = tmp_path / "evil.manifest.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValidationError, match="plain file name"):
        await fresh.market_archive.import_(path)


async def test_two_maintainers_one_runs(fresh: TradeStore, empty_database: object) -> None:
    async with TradeStore(fresh.settings) as other:
        async with fresh.db.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            with pytest.raises(Conflict, match="another maintainer is running"):
                await other.maintenance.run()
            await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        plan = await other.maintenance.plan()
        if MODE == "native":
            assert any(a.task == "compression" and "column blocks" in a.detail for a in plan)
        await other.maintenance.run()
