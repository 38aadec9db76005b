"""Native partitions: made on demand for any timestamp, premade ahead, race-safe."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import open_stores
from tradestore import TradeStore

pytestmark = pytest.mark.native_only  # native partitions; TimescaleDB makes chunks

INSERT_CANDLE = (
    "INSERT INTO market_data (symbol, timeframe, timestamp, open, high, low, close, volume) "
    "VALUES (%s, '1m', %s, 1, 1, 1, 1, 1)"
)


async def partition_of(store: TradeStore, table: str, ts: datetime) -> str:
    return await store.db.query_value(
        f"SELECT tableoid::regclass::text FROM {table} WHERE timestamp = %s", (ts,)
    )


async def test_backfill_years_in_the_past_just_works(store: TradeStore) -> None:
    partitions = store.partitions
    first = datetime(2019, 3, 14, 15, 9, tzinfo=UTC)
    last = datetime(2019, 7, 2, tzinfo=UTC)
    await partitions.ensure("market_data", first, last)
    for ts in (first, last):
        await store.db.execute(INSERT_CANDLE, ("PAST-1", ts))
    assert await partition_of(store, "market_data", first) == "market_data_p20190301"
    assert await partition_of(store, "market_data", last) == "market_data_p20190701"
    bounds = await store.db.query_value(
        "SELECT pg_get_expr(relpartbound, oid) FROM pg_class "
        "WHERE relname = 'market_data_p20190501'"
    )
    assert "2019-05-01 00:00:00+00" in bounds and "2019-06-01 00:00:00+00" in bounds


async def test_partitions_are_premade_ahead_of_now(store: TradeStore) -> None:
    names = {
        r["relname"]
        for r in await store.db.query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent IN ('market_data'::regclass, 'system_logs'::regclass)"
        )
    }
    now = datetime.now(UTC)
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    assert f"market_data_p{next_month:%Y%m%d}" in names
    in_five_days = now + timedelta(days=5)
    assert f"system_logs_p{in_five_days:%Y%m%d}" in names
    # and a write days in the future lands without any ensure() call
    future = now + timedelta(days=3)
    await store.db.execute(INSERT_CANDLE, ("FUTURE-1", future))
    assert await partition_of(store, "market_data", future) == f"market_data_p{future:%Y%m01}"


async def test_concurrent_writers_to_one_new_partition(migrated_db_url: str) -> None:
    when = datetime(2015, 6, 1, tzinfo=UTC)
    async with open_stores(migrated_db_url, 8) as stores:

        async def write(i: int, store: TradeStore) -> None:
            ts = when + timedelta(minutes=i)
            await store.partitions.ensure("market_data", ts, ts)
            await store.db.execute(INSERT_CANDLE, ("RACE-1", ts))

        await asyncio.gather(*(write(i, s) for i, s in enumerate(stores)))
        count = await stores[0].db.query_value(
            "SELECT count(*) FROM market_data_p20150601 WHERE symbol = 'RACE-1'"
        )
        assert count == 8
        parts = await stores[0].db.query_value(
            "SELECT count(*) FROM pg_class WHERE relname = 'market_data_p20150601'"
        )
        assert parts == 1


async def test_ensure_is_remembered_in_process(store: TradeStore) -> None:
    partitions = store.partitions
    ts = datetime(2016, 1, 10, tzinfo=UTC)
    await partitions.ensure("portfolio_snapshots", ts, ts + timedelta(days=40))
    assert partitions._covered("portfolio_snapshots", ts, ts + timedelta(days=40))
    assert not partitions._covered("portfolio_snapshots", ts, ts + timedelta(days=90))


async def test_writers_over_overlapping_new_months_never_deadlock(migrated_db_url: str) -> None:
    """Backfills whose month ranges overlap (Jan-Jun beside Mar-Aug, and so on) make
    their partitions concurrently: no deadlock, each month once."""
    async with open_stores(migrated_db_url, 4) as stores:
        for year in (2031, 2032, 2033):

            async def backfill(i: int, store: TradeStore, year: int = year) -> None:
                first = datetime(year, 1 + i * 2, 1, tzinfo=UTC)
                last = first + timedelta(days=170)  # about six months
                await store.partitions.ensure("market_data", first, last)

            await asyncio.gather(*(backfill(i, s) for i, s in enumerate(stores)))
            made = await stores[0].db.query_value(
                "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE %s",
                (f"market_data_p{year}%",),
            )
            assert made == 12
