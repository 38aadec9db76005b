"""The pool: queries, transactions, statement timeout, exhaustion, lost connections."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import psycopg
import pytest

from tests.conftest import make_settings
from tradestore import ConstraintViolation, NotFound, PoolExhausted, TradeStore, TransientError
from tradestore.settings import Settings


async def test_query_helpers(store: TradeStore) -> None:
    assert await store.db.query("SELECT 1 AS a UNION ALL SELECT 2") == [{"a": 1}, {"a": 2}]
    assert await store.db.query_one("SELECT %s::int AS v", (7,)) == {"v": 7}
    assert await store.db.query_value("SELECT 'x'") == "x"
    assert await store.db.query_one("SELECT 1 WHERE false") is None


async def test_transaction_commits_or_rolls_back(store: TradeStore) -> None:
    await store.db.execute("CREATE TEMP TABLE IF NOT EXISTS t_tx (v int)")  # per-connection
    await store.db.execute("CREATE TABLE IF NOT EXISTS tx_probe (v int)")
    await store.db.execute("DELETE FROM tx_probe")
    async with store.db.transaction() as conn:
        await conn.execute("INSERT INTO tx_probe VALUES (1)")
    with pytest.raises(RuntimeError):
        async with store.db.transaction() as conn:
            await conn.execute("INSERT INTO tx_probe VALUES (2)")
            raise RuntimeError("boom")
    assert await store.db.query("SELECT v FROM tx_probe") == [{"v": 1}]
    await store.db.execute("DROP TABLE tx_probe")


async def test_a_cancelled_pipelined_transaction_leaves_no_stale_results_in_the_pool(
    migrated_db_url: str,
) -> None:
    """Tasks cancelled anywhere inside a pipelined transaction (a relay stopped, a caller's
    timeout) roll it back and give back no connection holding a half-read pipeline: every
    later statement gets its own result, on every pooled connection."""
    settings = make_settings(migrated_db_url)
    async with TradeStore(settings) as store:
        await store.db.execute("CREATE TABLE IF NOT EXISTS pipeline_probe (v int)")

        async def pipelined(i: int) -> None:
            async with store.db.transaction(pipeline=True) as conn:
                await conn.execute("INSERT INTO pipeline_probe VALUES (%s)", (i,))
                cur = await conn.execute("SELECT %s::int AS v, pg_sleep(0.002)", (i,))
                await cur.fetchone()
                await conn.execute("INSERT INTO pipeline_probe VALUES (%s)", (-i,))

        rng = random.Random(5)
        for i in range(1, 150):
            task = asyncio.ensure_future(pipelined(i))
            await asyncio.sleep(rng.uniform(0, 0.006))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for i in range(200):  # every pooled connection, several times
            assert await store.db.query_one("SELECT %s::int AS v", (i,)) == {"v": i}
        half_done = await store.db.query_value(
            "SELECT count(*) FROM pipeline_probe p WHERE NOT EXISTS "
            "(SELECT 1 FROM pipeline_probe q WHERE q.v = -p.v)"
        )
        assert half_done == 0  # each transaction committed whole or not at all
        await store.db.execute("DROP TABLE pipeline_probe")


async def test_statement_timeout_is_applied(migrated_db_url: str) -> None:
    settings = make_settings(migrated_db_url, statement_timeout_ms=200)
    async with TradeStore(settings) as store:
        assert await store.db.query_value("SHOW statement_timeout") == "200ms"
        with pytest.raises(TransientError, match="statement timeout"):
            await store.db.query("SELECT pg_sleep(2)")


async def test_pool_exhaustion_raises_after_connect_timeout(migrated_db_url: str) -> None:
    settings = make_settings(
        migrated_db_url, pool_min_size=1, pool_max_size=1, connect_timeout_s=0.5
    )
    async with TradeStore(settings) as store:
        async with store.db.connection():
            started = time.monotonic()
            with pytest.raises(PoolExhausted, match="pool exhausted"):
                await store.db.query("SELECT 1")
            waited = time.monotonic() - started
        assert 0.4 < waited < 5
        assert await store.db.query_value("SELECT 1") == 1  # usable again afterwards


async def test_lost_connections_are_replaced_transparently(migrated_db_url: str) -> None:
    settings: Settings = make_settings(migrated_db_url, pool_min_size=3, pool_max_size=3)
    async with TradeStore(settings) as store:
        await store.db.pool.wait()
        # Kill every backend of this pool from outside.
        async with TradeStore(make_settings(migrated_db_url)) as admin:
            killed = [
                r["pid"]
                for r in await admin.db.query(
                    # in the select list, evaluated only for the rows the WHERE keeps
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'tradestore' AND datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state = 'idle'"
                )
            ]
            # termination is asynchronous: wait until those backends are really gone
            for _ in range(100):
                alive = await admin.db.query_value(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (killed,)
                )
                if not alive:
                    break
                await asyncio.sleep(0.05)
        assert len(killed) >= 3 and alive == 0
        results = await asyncio.gather(*(store.db.query_value("SELECT 1") for _ in range(6)))
        assert results == [1] * 6


@pytest.mark.native_only  # partitions
async def test_a_row_no_partition_takes_says_so(store: TradeStore) -> None:
    with pytest.raises(ConstraintViolation, match="no partition of relation") as caught:
        await store.db.execute(
            "INSERT INTO market_data (symbol, timeframe, timestamp, open, high, low, close, "
            "volume) VALUES ('NOPART-USD', '1m', '1901-01-01', 1, 1, 1, 1, 1)"
        )
    assert caught.value.sqlstate == "23514" and "?" not in str(caught.value)


async def test_a_translated_error_keeps_the_servers_diagnostics(store: TradeStore) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match="is not present in table") as caught:
        await store.db.execute(
            "INSERT INTO strategy_state (strategy_id, key, value, version) "
            "VALUES (%s, 'k', '{}', 1)",
            (missing,),
        )
    error = caught.value
    assert error.sqlstate == "23503" and error.diag is not None
    assert error.diag.table == "strategy_state" and error.diag.constraint
    assert error.diag.detail and str(missing) in error.diag.detail
    assert isinstance(error.__cause__, psycopg.errors.ForeignKeyViolation)


async def test_every_foreign_key_cascades_or_sets_null_on_delete(store: TradeStore) -> None:
    """Deleting a referenced row never violates a foreign key, so a violation is always a
    row naming a record that does not exist (what NotFound says)."""
    restricting = await store.db.query(
        "SELECT conname FROM pg_constraint WHERE contype = 'f' "
        "AND connamespace = 'public'::regnamespace AND confdeltype NOT IN ('c', 'n')"
    )
    assert restricting == []
