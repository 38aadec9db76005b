"""`query("SELECT 1")` through the pool against a bare psycopg connection."""

from __future__ import annotations

import psycopg

from bench.harness import BenchContext, Result, timed_pair

N = 5000


async def run(ctx: BenchContext) -> list[Result]:
    async with await psycopg.AsyncConnection.connect(ctx.db_url, autocommit=True) as conn:

        async def bare() -> object:
            cur = await conn.execute("SELECT 1")
            return await cur.fetchall()

        ours, raw = await timed_pair(N, lambda: ctx.store.db.query("SELECT 1"), bare)
    return [
        Result(
            name="pool query('SELECT 1')",
            ours=ours * 1e6,
            baseline=raw * 1e6,
            unit="µs/op",
            baseline_name="bare psycopg AsyncConnection",
            higher_is_better=False,
        )
    ]
