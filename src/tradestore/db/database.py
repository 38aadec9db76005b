"""The PostgreSQL connection pool and the few ways code talks through it.

`query`, `query_one`, `query_value` and `execute` borrow a connection for one statement;
`transaction()` holds one for a block and commits, or rolls back on any error.
Driver errors leave this module translated (`tradestore.db.errors.translate`).
"""

from __future__ import annotations

import json
import logging
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, AsyncCursor, pq, sql
from psycopg.abc import Params
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tradestore.db.errors import first_lines, translate
from tradestore.errors import DatabaseUnavailable, TradeStoreError
from tradestore.frames import Records
from tradestore.settings import Settings, redact, url_secrets

log = logging.getLogger(__name__)

Connection = AsyncConnection[DictRow]
T = TypeVar("T")
Query = str | bytes | sql.SQL | sql.Composed


RECENT_BREAKAGE_S = 10.0  # a connection found dead this recently: the server restarted


class TradestorePool(AsyncConnectionPool[Connection]):
    """The pool, remembering when it last found a pooled connection dead (the server
    restarted or dropped it): a checkout that times out soon after is an outage, not an
    exhausted pool."""

    last_broken_at: float | None = None

    def __init__(self, conninfo: str, **kwargs: Any) -> None:
        super().__init__(conninfo, check=self.check_alive, **kwargs)

    async def check_alive(self, conn: AsyncConnection[Any]) -> None:
        """Checkout check that costs no round trip in the normal case.

        An idle connection has nothing to read. If its socket is readable, the server
        closed it or sent a termination notice (admin shutdown, `pg_terminate_backend`,
        idle timeout): only then is a real round trip made, and it raises if the
        connection is dead, so the pool discards it and hands out a fresh one.
        """
        try:
            if conn.closed or conn.broken:
                raise psycopg.OperationalError("connection is closed")
            if _readable(conn.pgconn.socket):
                await conn.execute("SELECT 1")
        except psycopg.Error:
            self.last_broken_at = time.monotonic()
            raise

    def broke_recently(self) -> bool:
        broken = self.last_broken_at
        return broken is not None and time.monotonic() - broken < RECENT_BREAKAGE_S


def _readable(fd: int) -> bool:
    """Whether fd has something to read, without waiting (poll: no FD_SETSIZE limit)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def safe_json_loads(data: str | bytes) -> Any:
    """json.loads for jsonb values read back: a document nested deeper than Python's
    recursion limit (written by any client) becomes a marker instead of failing the
    whole read (`orders list` of a table holding one such row)."""
    try:
        return json.loads(data)
    except RecursionError:
        return {"_unreadable": f"JSON nested too deeply to read ({len(data):,} bytes)"}


async def _configure(conn: AsyncConnection[Any]) -> None:
    set_json_loads(safe_json_loads, conn)


def build_pool(
    conninfo: str,
    settings: Settings,
    *,
    lock_timeout_ms: int | None = None,
    application_name: str | None = None,
) -> TradestorePool:
    kwargs: dict[str, Any] = settings.postgres_connect_kwargs()
    if application_name is not None:
        kwargs["application_name"] = application_name
    # every pooled connection works in UTC, whatever the server's or database's TimeZone
    # (PgBouncer passes no startup options: there the role's settings must say it, which
    # the store checks when it opens)
    if not settings.pgbouncer:
        kwargs["options"] = f"-c statement_timeout={settings.statement_timeout_ms} -c TimeZone=UTC"
        if lock_timeout_ms is not None:
            kwargs["options"] += f" -c lock_timeout={lock_timeout_ms}"
    kwargs["row_factory"] = dict_row
    kwargs["autocommit"] = True
    if settings.pgbouncer:
        kwargs["prepare_threshold"] = None  # transaction pooling: no prepared statements
    return TradestorePool(
        conninfo,
        kwargs=kwargs,
        connection_class=AsyncConnection[DictRow],
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.connect_timeout_s,
        max_idle=settings.idle_timeout_s,
        name="tradestore",
        configure=_configure,
        open=False,
    )


def _pipeline_left_clean(conn: Connection, exc: BaseException) -> bool:
    """Whether a pipelined transaction that raised left its connection fit for reuse: an
    error raised in the block, after which the rollback and the pipeline's sync ran. A
    cancellation can land while the pipeline still holds results nobody read; the next
    statement on that connection would get one of them."""
    return (
        isinstance(exc, Exception)
        and conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
        and conn.info.transaction_status == pq.TransactionStatus.IDLE
    )


def _returns_rows(cur: AsyncCursor[DictRow]) -> bool:
    """Whether the statement returned rows (maybe none), as `cur.description` would say
    without building a Column object per column: that was a tenth of an order cycle's
    client time."""
    res = cur.pgresult
    return res is not None and (res.nfields > 0 or res.status == pq.ExecStatus.TUPLES_OK)


@asynccontextmanager
async def pipelined_transaction(conn: Connection) -> AsyncIterator[None]:
    """A transaction on a borrowed connection in libpq's pipeline mode (see
    `Database.transaction`). A statement executed last in the block and fetched after it
    travels with the COMMIT: one round trip for both. A connection the block left unfit
    for reuse is closed, so the pool replaces it."""
    try:
        async with conn.pipeline(), conn.transaction():
            yield
    except BaseException as exc:
        if not _pipeline_left_clean(conn, exc):
            conn.pgconn.finish()
        raise


async def _all_rows(cur: AsyncCursor[DictRow]) -> list[DictRow]:
    return await cur.fetchall() if _returns_rows(cur) else []


async def _first_row(cur: AsyncCursor[DictRow]) -> DictRow | None:
    return await cur.fetchone() if _returns_rows(cur) else None


async def _records(cur: AsyncCursor[DictRow]) -> Records:
    """The rows with the result's column names, even when no row matches."""
    return Records(await _all_rows(cur), [c.name for c in cur.description or []])


async def _row_count(cur: AsyncCursor[DictRow]) -> int:
    return cur.rowcount


class Database:
    """An async pool of autocommit connections that return rows as dicts."""

    def __init__(self, pool: AsyncConnectionPool[Connection], *, owns_pool: bool = True) -> None:
        self.pool = pool
        self._owns_pool = owns_pool

    async def open(self, *, wait: bool = True, timeout_s: float = 10.0) -> None:
        await self._probe()
        try:
            await self.pool.open(wait=wait, timeout=timeout_s)
            return
        except psycopg.Error as exc:
            error = self._connect_error(exc)
        raise error  # outside the except block: no __context__ holding the driver's text

    async def _probe(self) -> None:
        """One direct connection first: fails within the connect timeout with libpq's
        reason, instead of the pool retrying in the background until it gives up."""
        conninfo, pool_kwargs = self.pool.conninfo, self.pool.kwargs
        if not isinstance(conninfo, str) or not isinstance(pool_kwargs, dict):
            return  # computed per connection: nothing fixed to probe
        kwargs = {k: v for k, v in pool_kwargs.items() if k != "row_factory"}
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, **kwargs)
        except psycopg.Error as exc:
            error = self._connect_error(exc)
        else:
            await conn.close()
            return
        raise error  # outside the except block: no __context__ holding the driver's text

    def _connect_error(self, exc: psycopg.Error) -> TradeStoreError:
        """libpq's reason, with the password taken out: a malformed URL is quoted back in
        the message. Raised apart from the driver's exception, which would carry it."""
        conninfo = self.pool.conninfo if isinstance(self.pool.conninfo, str) else ""
        message = redact(first_lines(exc, 2), url_secrets(conninfo))
        error = TradeStoreError(f"cannot connect to PostgreSQL: {message}")
        error.sqlstate = exc.sqlstate
        return error

    async def close(self, *, timeout_s: float = 5.0) -> None:
        """Close the pool (if ours), waiting at most timeout_s for its workers."""
        if self._owns_pool:
            await self.pool.close(timeout=timeout_s)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """Borrow a connection (autocommit) for several statements."""
        conn = await self._checkout()
        try:
            async with conn:  # psycopg's exit: commit, or roll back on an error
                yield conn
        except psycopg.Error as exc:
            raise translate(exc) from exc
        finally:
            await self.pool.putconn(conn)

    async def _checkout(self) -> Connection:
        """A pooled connection. When none comes in time, the error says whether the pool
        is exhausted or the server unreachable; other pool errors are translated too."""
        failed_connects = self._failed_connects()
        try:
            return await self.pool.getconn()
        except PoolTimeout as exc:
            raise await self._timeout_error(exc, failed_connects) from exc
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def _failed_connects(self) -> int:
        return self.pool.get_stats().get("connections_errors", 0)

    async def _timeout_error(self, exc: PoolTimeout, failed_before: int) -> TradeStoreError:
        """No connection in time: the pool is exhausted when it holds every connection it
        may open, all busy, and the server is fine. Otherwise the server could not be
        reached (it fails now, attempts failed while we waited, the pool is still
        reconnecting, or found its connections dead moments ago after a restart): then
        "raise the pool size" would send the user to the wrong fix."""
        try:
            await self._probe()
        except TradeStoreError as probe_error:
            return DatabaseUnavailable(f"{probe_error} (server down or unreachable; retry)")
        stats = self.pool.get_stats()
        if (
            stats.get("connections_errors", 0) > failed_before
            or stats.get("pool_size", 0) < self.pool.max_size
            or (isinstance(self.pool, TradestorePool) and self.pool.broke_recently())
        ):
            return DatabaseUnavailable(
                "PostgreSQL was unreachable (restarted?) and the pool is reconnecting: retry"
            )
        return translate(exc)

    @asynccontextmanager
    async def transaction(self, *, pipeline: bool = False) -> AsyncIterator[Connection]:
        """A connection inside a transaction: committed on exit, rolled back on error.

        With `pipeline`, the block runs in libpq's pipeline mode: BEGIN and every statement
        whose result is not fetched go out without waiting for the server, so a block
        costs one round trip per `fetch*()` plus one for the COMMIT. An error then
        surfaces at the next fetch or at the commit, not at its `execute`; COPY is not
        allowed. For short write paths that fetch little (the order and trade cycle).
        """
        async with self.connection() as conn:
            if not pipeline:
                async with conn.transaction():
                    yield conn
                return
            async with pipelined_transaction(conn):
                yield conn

    async def query(self, query: Query, params: Params | None = None) -> list[DictRow]:
        return await self._statement(query, params, _all_rows)

    async def records(self, query: Query, params: Params | None = None) -> Records:
        """The rows as columns for data frames (see tradestore.frames), with the
        result's column names even when no row matches."""
        return await self._statement(query, params, _records)

    async def query_one(self, query: Query, params: Params | None = None) -> DictRow | None:
        return await self._statement(query, params, _first_row)

    async def query_value(self, query: Query, params: Params | None = None) -> Any:
        row = await self.query_one(query, params)
        return None if row is None else next(iter(row.values()))

    async def execute(self, query: Query, params: Params | None = None) -> int:
        """Run one statement; the number of rows it touched."""
        return await self._statement(query, params, _row_count)

    async def _statement(
        self,
        query: Query,
        params: Params | None,
        read: Callable[[AsyncCursor[DictRow]], Awaitable[T]],
    ) -> T:
        """Run one statement on a pooled connection and `read` its result, without
        `connection()`'s context managers: they were a third of the pool's cost a call."""
        conn = await self._checkout()
        try:
            return await read(await conn.execute(query, params))
        except psycopg.Error as exc:
            raise translate(exc) from exc
        finally:
            await self.pool.putconn(conn)

    async def execute_many(self, query: Query, params_seq: Sequence[Params]) -> None:
        async with self.transaction() as conn, conn.cursor() as cur:
            await cur.executemany(query, params_seq)

    def stats(self) -> dict[str, int]:
        """Pool counters: size, available, waiting, max (see psycopg_pool `get_stats`)."""
        raw = self.pool.get_stats()
        return {
            "size": raw.get("pool_size", 0),
            "available": raw.get("pool_available", 0),
            "waiting": raw.get("requests_waiting", 0),
            "max": self.pool.max_size,
        }
