"""The system_logs handler: never blocks, loses nothing unless the queue overflows."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

from tests.conftest import make_settings
from tests.servers import PostgresServer
from tests.trading.helpers import new_strategy
from tradestore import TradeStore
from tradestore.logs import LogFilter, log_context


async def count_rows(store: TradeStore, marker: str) -> int:
    return int(
        await store.db.query_value(
            "SELECT count(*) FROM system_logs WHERE details->>'run' = %s", (marker,)
        )
    )


async def test_burst_of_100k_records_from_threads_none_lost(store: TradeStore) -> None:
    handler = await store.log_handler(queue_size=200_000, batch_size=10_000)
    logger = logging.getLogger(f"burst.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    marker = uuid.uuid4().hex

    def burst(n: int) -> None:
        for i in range(n):
            logger.info("tick %d", i, extra={"run": marker, "category": "DATA"})

    threads = [threading.Thread(target=burst, args=(25_000,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # what is under test is that no record is lost, not how fast a loaded machine writes
    # 100k rows: the close may take longer than its default bound (5 s) here
    await handler.aclose(close_timeout_s=120)
    assert handler.dropped == 0 and handler.unwritten == 0
    assert await count_rows(store, marker) == 100_000


async def test_overflow_is_counted_and_reported(store: TradeStore) -> None:
    handler = await store.log_handler(queue_size=1000, batch_size=500, flush_interval_s=60)
    logger = logging.getLogger(f"overflow.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    marker = uuid.uuid4().hex
    for i in range(5000):  # no await: the writer cannot drain meanwhile
        logger.warning("flood %d", i, extra={"run": marker})
    assert handler.dropped == 4000
    await handler.aclose()
    assert await count_rows(store, marker) == 1000
    notice = await store.db.query_one(
        "SELECT level, message, details FROM system_logs WHERE category = 'LOGGING' "
        "AND (details->>'dropped')::int = 4000"
    )
    assert notice is not None and notice["level"] == "WARN"


async def test_context_levels_and_queries(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    handler = await store.log_handler()
    logger = logging.getLogger(f"ctx.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    with log_context(strategy_id=strategy.id, user_id="alice", ip_address="10.1.2.3"):
        logger.warning("risk limit near", extra={"category": "RISK", "limit": 0.9})
        logger.critical("kill switch", extra={"category": "RISK"})
    try:
        raise ValueError("bad fill")
    except ValueError:
        logger.exception("fill failed", extra={"category": "ORDER", "ip_address": "not-an-ip"})
    await handler.aclose()
    rows = await store.search_logs(LogFilter(strategy_id=strategy.id, level="WARNING"))
    assert [r["level"] for r in rows] == ["FATAL", "WARN"]
    assert rows[1]["details"]["limit"] == 0.9 and rows[1]["user_id"] == "alice"
    assert str(rows[1]["ip_address"]) == "10.1.2.3"
    errors = await store.search_logs(
        LogFilter(
            category="ORDER", text="fill failed", since=datetime.now(UTC) - timedelta(minutes=5)
        )
    )
    assert errors[0]["level"] == "ERROR" and "ValueError" in errors[0]["details"]["exception"]
    assert errors[0]["ip_address"] is None  # a bad address does not fail the batch


async def test_search_text_is_literal_not_a_like_pattern(store: TradeStore) -> None:
    strategy = await new_strategy(store)
    handler = await store.log_handler()
    logger = logging.getLogger(f"like.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    with log_context(strategy_id=strategy.id):
        for message in ("order 100 filled", "order 1_0 odd", "50% done", "path c:\\tmp"):
            logger.warning(message)
    await handler.aclose()

    async def found(text: str) -> list[str]:
        rows = await store.search_logs(LogFilter(strategy_id=strategy.id, text=text))
        return sorted(r["message"] for r in rows)

    assert await found("1_0") == ["order 1_0 odd"]
    assert await found("0%") == ["50% done"]
    assert await found("%") == ["50% done"]
    assert await found("c:\\tmp") == ["path c:\\tmp"]
    assert await found("ORDER 1") == ["order 100 filled", "order 1_0 odd"]


async def test_logging_never_blocks_even_when_the_database_is_slow(store: TradeStore) -> None:
    handler = await store.log_handler(queue_size=100_000, batch_size=50_000)
    logger = logging.getLogger(f"slow.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    async with store.db.transaction() as conn:  # hold a lock the writer will need
        await conn.execute("LOCK TABLE system_logs IN SHARE MODE")
        # A blocking emit would deadlock here: this task holds the lock the writer needs.
        for i in range(10_000):
            logger.info("while locked %d", i)
        await asyncio.sleep(0.1)  # the writer tries, and waits on the lock, meanwhile
    await handler.aclose()
    assert handler.dropped == 0 and handler.written == 10_000


async def test_unknown_ids_become_null_and_a_bad_batch_cannot_block(store: TradeStore) -> None:
    handler = await store.log_handler(batch_size=10)
    logger = logging.getLogger(f"ids.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    marker = uuid.uuid4().hex
    logger.info(
        "for a strategy that does not exist",
        extra={"run": marker, "strategy_id": uuid.uuid4(), "order_id": "not-a-uuid"},
    )
    await handler.flush_now()
    row = await store.db.query_one(
        "SELECT strategy_id, order_id FROM system_logs WHERE details->>'run' = %s", (marker,)
    )
    assert row == {"strategy_id": None, "order_id": None}
    assert handler.unwritten == 0
    await handler.aclose()


async def test_a_postgres_outage_loses_no_log_record(postgres_server: PostgresServer) -> None:
    settings = make_settings(postgres_server.url, connect_timeout_s=1.0, timeseries_mode="auto")
    async with TradeStore(settings) as store:
        await store.migrate()
        handler = await store.log_handler(batch_size=500, flush_interval_s=0.1)
        logger = logging.getLogger(f"outage.{uuid.uuid4().hex}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(handler)
        for i in range(2000):
            logger.info("before %d", i)
        await asyncio.sleep(0.5)
        postgres_server.stop("fast")
        for i in range(3000):  # logged while the server is down
            logger.info("during %d", i)
            if i % 500 == 0:
                await asyncio.sleep(0.5)
        postgres_server.start()
        for i in range(1000):
            logger.info("after %d", i)
        await handler.aclose(close_timeout_s=30)
        assert handler.dropped == 0 and handler.unwritten == 0
        count = await store.db.query_value("SELECT count(*) FROM system_logs")
        assert count == 6000
