"""Reads routed to a real streaming replica (pg_basebackup from a private primary, both
started by the test): routing, the lag bound (replay paused), a replica down, a replica
promoted. Writes always go to the primary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.conftest import make_settings
from tests.marketdata.helpers import candles, new_symbol
from tests.servers import PostgresServer, replica_of, wait_for_count
from tests.trading.helpers import new_strategy
from tradestore import Conflict, TradeStore, TransientError

T0 = datetime(2024, 6, 3, tzinfo=UTC)


@pytest.fixture
def servers() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    primary = PostgresServer(settings={"max_wal_senders": "5", "wal_level": "replica"})
    primary.start()
    replica = None
    try:
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE tradestore")
        replica = replica_of(primary)
        yield primary, replica
    finally:
        if replica is not None:
            replica.destroy()
        primary.destroy()


def _settings(primary: PostgresServer, replica: PostgresServer, max_lag_s: float) -> object:
    return make_settings(
        primary.database_url("tradestore"),
        database_replica_urls=replica.database_url("tradestore"),
        replica_max_lag_s=max_lag_s,
        timeseries_mode="native",
    )


def _wait_replayed(replica: PostgresServer, symbol: str, rows: int) -> None:
    wait_for_count(
        replica.database_url("tradestore"),
        "SELECT count(*) FROM market_data_all WHERE symbol = %s",
        (symbol,),
        rows,
    )


async def test_reads_go_to_the_replica_within_the_lag_bound(
    servers: tuple[PostgresServer, PostgresServer], caplog: pytest.LogCaptureFixture
) -> None:
    primary, replica = servers
    async with TradeStore(_settings(primary, replica, max_lag_s=1.0)) as store:  # type: ignore[arg-type]
        await store.migrate()
        symbol = new_symbol()
        await store.market_data.store_candles(symbol, "1m", candles(60, start=T0))
        _wait_replayed(replica, symbol, 60)
        assert await store.reads.query_value("SELECT pg_is_in_recovery()") is True
        frame = await store.market_data.get_historical_data(
            symbol, "1m", T0, T0 + timedelta(hours=1)
        )
        assert len(frame) == 60
        assert next(iter((await store.monitor.collect()).replica_lags.values())) == 0.0

        with psycopg.connect(replica.database_url("tradestore"), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        later = T0 + timedelta(hours=1)
        await store.market_data.store_candles(symbol, "1m", candles(30, start=later))
        await asyncio.sleep(2.2)  # beyond the 1 s bound, and past the probe interval
        with caplog.at_level(logging.WARNING, logger="tradestore.db.replicas"):
            assert await store.reads.query_value("SELECT pg_is_in_recovery()") is False
            fresh = await store.market_data.get_historical_data(
                symbol, "1m", T0, T0 + timedelta(hours=2)
            )
        assert len(fresh) == 90  # served by the primary: nothing stale beyond the bound
        assert "reads go to the primary" in caplog.text

        with psycopg.connect(replica.database_url("tradestore"), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
        _wait_replayed(replica, symbol, 90)
        await asyncio.sleep(1.1)
        assert await store.reads.query_value("SELECT pg_is_in_recovery()") is True


async def test_order_and_backtest_lists_read_the_replica_and_gets_the_primary(
    servers: tuple[PostgresServer, PostgresServer],
) -> None:
    """Lists tolerate staleness (within the bound); reading one order by id does not."""
    primary, replica = servers
    async with TradeStore(_settings(primary, replica, max_lag_s=60.0)) as store:  # type: ignore[arg-type]
        await store.migrate()
        strategy = await new_strategy(store)
        wait_for_count(
            replica.database_url("tradestore"),
            "SELECT count(*) FROM strategies WHERE id = %s",
            (strategy.id,),
            1,
        )
        with psycopg.connect(replica.database_url("tradestore"), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        try:
            order = await store.orders.create(
                {"strategy_id": strategy.id, "symbol": "BTC-USD", "side": "BUY",
                 "type": "MARKET", "quantity": "1"}
            )  # fmt: skip
            await store.backtests.create(
                strategy.id, name="bt", symbol="BTC-USD", timeframe="1h", start=T0,
                end=T0 + timedelta(days=1), initial_capital="1000",
            )  # fmt: skip
            assert await store.orders.list(strategy_id=strategy.id) == []  # the replica's
            assert len(await store.orders.frame(strategy_id=strategy.id)) == 0
            assert await store.backtests.find(strategy_id=strategy.id) == []
            assert (await store.orders.get(order.id)).id == order.id  # the primary's
        finally:
            with psycopg.connect(replica.database_url("tradestore"), autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
        for _ in range(100):
            if await store.orders.list(strategy_id=strategy.id):
                break
            await asyncio.sleep(0.1)
        assert [o.id for o in await store.orders.list(strategy_id=strategy.id)] == [order.id]


async def test_a_replica_down_or_promoted_is_skipped(
    servers: tuple[PostgresServer, PostgresServer], caplog: pytest.LogCaptureFixture
) -> None:
    primary, replica = servers
    async with TradeStore(_settings(primary, replica, max_lag_s=5.0)) as store:  # type: ignore[arg-type]
        await store.migrate()
        symbol = new_symbol()
        await store.market_data.store_candles(symbol, "1m", candles(10, start=T0))
        _wait_replayed(replica, symbol, 10)
        assert await store.reads.query_value("SELECT pg_is_in_recovery()") is True

        replica.stop("immediate")
        await asyncio.sleep(1.1)
        with caplog.at_level(logging.WARNING, logger="tradestore.db.replicas"):
            frame = await store.market_data.get_historical_data(
                symbol, "1m", T0, T0 + timedelta(hours=1)
            )
        assert len(frame) == 10  # no error: the primary answered
        assert "unreachable" in caplog.text
        assert list(store.reads.lags().values()) == [None]

        replica.start()
        replica._run("pg_ctl", "-D", str(replica.datadir), "-w", "promote")
        await asyncio.sleep(5.2)  # an unreachable replica is probed again after 5 s
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tradestore.db.replicas"):
            assert await store.reads.query_value("SELECT pg_is_in_recovery()") is False
        assert "no longer a replica" in caplog.text


async def test_failover_to_the_promoted_replica_loses_and_duplicates_nothing(
    servers: tuple[PostgresServer, PostgresServer],
) -> None:
    """8 tasks run order cycles (create, then fill) while the primary dies and the replica
    is promoted. A multi-host URL with target_session_attrs=read-write finds the new
    primary; a call in flight when the primary dies fails with TransientError; the cycles
    retry theirs with the same keys (client_order_id; a full fill retried after it
    committed is refused as an overfill)."""
    primary, replica = servers
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{replica.port}/tradestore"
        "?target_session_attrs=read-write"
    )
    settings = make_settings(url, timeseries_mode="native", connect_timeout_s=2, event_relay=True)
    async with TradeStore(settings) as store:
        await store.migrate()
        strategy = await new_strategy(store)
        since = datetime.now(UTC) - timedelta(seconds=1)
        finished: list[str] = []
        stop = asyncio.Event()

        async def retried(op: Any) -> Any:
            for _ in range(120):
                try:
                    return await op()
                except TransientError:
                    await asyncio.sleep(0.25)
            raise AssertionError("no new primary within 30 s")

        async def worker(n: int) -> None:
            i = 0
            while not stop.is_set():
                key = f"fo-{n}-{i}"
                order = await retried(
                    lambda key=key: store.orders.create(
                        {
                            "strategy_id": strategy.id,
                            "symbol": "BTC-USD",
                            "side": "BUY",
                            "type": "MARKET",
                            "quantity": "1",
                            "client_order_id": key,
                        }
                    )
                )

                async def fill(order_id: Any = order.id) -> None:
                    # refused as an overfill: the first attempt had committed
                    with contextlib.suppress(Conflict):
                        await store.orders.record_fill(order_id, quantity="1", price="100")

                await retried(fill)
                finished.append(key)
                i += 1

        rounds: list[float] = []  # when each maintenance round finished
        schedule = asyncio.create_task(
            store.maintenance.schedule(
                interval_s=0.5, on_round=lambda _: rounds.append(time.monotonic())
            )
        )
        tasks = [asyncio.create_task(worker(n)) for n in range(8)]
        # a call certainly in flight when the primary dies (the cycles' calls are a few ms
        # long: whether one of them is caught mid-flight depends on the machine's load)
        in_flight = asyncio.create_task(store.db.query_value("SELECT pg_sleep(60)"))
        await asyncio.sleep(1.5)
        assert await store.db.query_value(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%'"
        )
        before = len(finished)

        def failover() -> None:
            primary.stop("immediate")
            replica._run("pg_ctl", "-D", str(replica.datadir), "-w", "promote")

        await asyncio.to_thread(failover)  # the workers go on meanwhile, as in production
        promoted_at = time.monotonic()
        with pytest.raises(TransientError):
            await in_flight
        await asyncio.sleep(6.0)
        stop.set()
        await asyncio.gather(*tasks)
        after = len(finished) - before

        rows = await store.db.query(
            "SELECT client_order_id, filled_quantity, fees, status FROM orders "
            "WHERE strategy_id = %s",
            (strategy.id,),
        )
        # the relay resumed by itself on the new primary: the events of orders created
        # after the failover reach the stream
        last = f"fo-0-{sum(1 for k in finished if k.startswith('fo-0-')) - 1}"
        relayed: set[str] = set()
        for _ in range(100):
            relayed = {
                e.payload.get("client_order_id", "")
                async for e in store.events.replay(since)
                if e.type == "order.created"
            }
            if last in relayed:
                break
            await asyncio.sleep(0.1)
        assert last in relayed
        # the maintenance schedule resumed by itself too: a round ran on the new primary
        for _ in range(300):
            if rounds and rounds[-1] > promoted_at:
                break
            await asyncio.sleep(0.1)
        schedule.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await schedule
        assert rounds and rounds[0] < promoted_at < rounds[-1]
    assert before > 0 and after > 0  # cycles ran before the failover, and after it
    keys = [r["client_order_id"] for r in rows]
    assert len(keys) == len(set(keys))  # no order twice
    assert set(finished) <= set(keys)  # every finished cycle is there
    assert all(
        r["filled_quantity"] == 1 and r["status"] == "FILLED"
        for r in rows
        if r["client_order_id"] in set(finished)
    )  # filled once, never twice
