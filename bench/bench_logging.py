"""system_logs: records/s through the handler against raw COPY of the same rows, and the
caller-side cost of one log call against a logging.NullHandler."""

from __future__ import annotations

import logging
import time

from bench.harness import BenchContext, Result
from tradestore.logs.handler import COPY_SQL, COPY_TYPES, to_row

N = 100_000


async def run(ctx: BenchContext) -> list[Result]:
    store = ctx.store
    handler = await store.log_handler(queue_size=N * 2, batch_size=10_000)
    logger = logging.getLogger("bench.system_logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    started = time.perf_counter()
    for i in range(N):
        logger.info("order %d filled", i, extra={"category": "ORDER", "qty": i})
    caller_s = time.perf_counter() - started
    await handler.aclose()
    total_s = time.perf_counter() - started
    logger.removeHandler(handler)

    null_logger = logging.getLogger("bench.null")
    null_logger.propagate = False
    null_logger.setLevel(logging.INFO)
    null_logger.addHandler(logging.NullHandler())
    started = time.perf_counter()
    for i in range(N):
        null_logger.info("order %d filled", i, extra={"category": "ORDER", "qty": i})
    null_s = time.perf_counter() - started

    records = [
        logging.LogRecord("bench.raw", logging.INFO, __file__, 0, "order %d filled", (i,), None)
        for i in range(N)
    ]
    rows = [to_row(r) for r in records]
    await store.partitions.ensure("system_logs", rows[0][0], rows[-1][0])
    started = time.perf_counter()
    async with store.db.connection() as conn, conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            await copy.write_row(row)
    raw_s = time.perf_counter() - started
    return [
        Result(
            "system_logs handler, 100k records",
            N / total_s,
            N / raw_s,
            "records/s",
            "raw COPY of the same rows",
        ),
        Result(
            "one log call (caller side)",
            caller_s / N * 1e6,
            null_s / N * 1e6,
            "µs",
            "the same call to a NullHandler",
            higher_is_better=False,
        ),
    ]
