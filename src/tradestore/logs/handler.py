"""system_logs: a logging.Handler that never blocks its caller (searching: logs.search).

    handler = await store.log_handler()    # started on the store's event loop
    logging.getLogger("bot").addHandler(handler)
    log.info("order sent", extra={"category": "ORDER", "order_id": oid})
    with log_context(strategy_id=sid):     # context for every record inside
        ...

`emit` only puts the record on a bounded, thread-safe queue (any thread may log); when
the queue is full the record is dropped and counted (`handler.dropped`), and a WARN row
saying how many were dropped is written as soon as there is room. A background task on
the store's loop writes batches with binary COPY. A batch that cannot be written
(PostgreSQL down) is kept and retried with backoff, never dropped: while the outage
lasts the queue fills, and only records that find it full are dropped (and counted).
`await aclose()` flushes what is queued, waiting at most `close_timeout_s`; what is
still unwritten then is counted in `handler.unwritten` and reported in a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import json
import logging
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg.types.json import Jsonb

from tradestore.db.database import Database
from tradestore.errors import TransientError, ValidationError
from tradestore.supervisor import Supervised, describe

if TYPE_CHECKING:
    from tradestore.db.partitions import PartitionManager

_log = logging.getLogger(__name__)

LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARN",
    "WARN": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "FATAL",
    "FATAL": "FATAL",
}
CONTEXT_FIELDS = (
    "category",
    "strategy_id",
    "trade_id",
    "order_id",
    "user_id",
    "session_id",
    "ip_address",
    "user_agent",
)
COLUMNS = (
    "timestamp",
    "level",
    "category",
    "strategy_id",
    "trade_id",
    "order_id",
    "message",
    "details",
    "user_id",
    "session_id",
    "ip_address",
    "user_agent",
)
COPY_SQL = f"COPY system_logs ({', '.join(COLUMNS)}) FROM STDIN"
# Records are staged, then inserted with their ids checked: a strategy, trade or order id
# that does not exist (yet, or any more) becomes NULL instead of failing the batch on a
# foreign key.
STAGE_SQL = """
CREATE TEMP TABLE log_stage ON COMMIT DROP AS
SELECT timestamp, level, category, strategy_id, trade_id, order_id, message, details,
       user_id, session_id, ip_address, user_agent
  FROM system_logs WITH NO DATA
"""
COPY_STAGE_SQL = f"COPY log_stage ({', '.join(COLUMNS)}) FROM STDIN"
INSERT_STAGED = """
INSERT INTO system_logs (timestamp, level, category, strategy_id, trade_id, order_id, message,
                         details, user_id, session_id, ip_address, user_agent)
SELECT l.timestamp, l.level, l.category, s.id, t.id, o.id, l.message, l.details, l.user_id,
       l.session_id, l.ip_address, l.user_agent
  FROM log_stage l
  LEFT JOIN strategies s ON s.id = l.strategy_id
  LEFT JOIN trades t ON t.id = l.trade_id
  LEFT JOIN orders o ON o.id = l.order_id
"""
COPY_TYPES = [
    "timestamptz",
    "varchar",
    "varchar",
    "uuid",
    "uuid",
    "uuid",
    "text",
    "jsonb",
    "varchar",
    "varchar",
    "inet",
    "text",
]
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tradestore_log_context", default=None
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach context (category, strategy_id, ...) to every record logged inside."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValidationError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def to_row(record: logging.LogRecord) -> tuple[Any, ...]:
    """The system_logs row of a record: level mapped, context from extras or context var."""
    context = dict(_context.get() or {})
    for name in CONTEXT_FIELDS:
        if name in record.__dict__:
            context[name] = record.__dict__[name]
    details = {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD_ATTRS and k not in CONTEXT_FIELDS
    }
    details["logger"] = record.name
    if record.exc_info and record.exc_info[0] is not None:
        details["exception"] = logging.Formatter().formatException(record.exc_info)
    return (
        datetime.fromtimestamp(record.created, UTC),
        LEVELS.get(record.levelname, "INFO"),
        str(context.get("category") or record.name.split(".")[0].upper())[:50],
        _uuid(context.get("strategy_id")),
        _uuid(context.get("trade_id")),
        _uuid(context.get("order_id")),
        record.getMessage(),
        Jsonb(details, dumps=_dumps),
        _text(context.get("user_id"), 100),
        _text(context.get("session_id"), 100),
        _ip(context.get("ip_address")),
        context.get("user_agent"),
    )


class SystemLogHandler(logging.Handler):
    def __init__(
        self,
        db: Database,
        partitions: PartitionManager,
        *,
        queue_size: int = 100_000,
        batch_size: int = 5000,
        flush_interval_s: float = 0.5,
        level: int = logging.INFO,
    ) -> None:
        super().__init__(level)
        self.db = db
        self.partitions = partitions
        self.queue: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=queue_size)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.dropped = 0  # records lost to a full queue, ever
        self.unwritten = 0  # records still unwritten when the handler was closed
        self.written = 0
        self._unreported_drops = 0
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.writer = Supervised("system_logs writer", self._run, logger=_log)
        self._pending: list[tuple[Any, ...]] = []  # taken from the queue, not yet written

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            row = to_row(record)
        except Exception:  # a logging handler must not raise into its caller
            self.handleError(record)
            return
        try:
            self.queue.put_nowait(row)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                self._unreported_drops += 1
            return
        if self.queue.qsize() >= self.batch_size and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def aclose(self, *, close_timeout_s: float = 5.0) -> None:
        """Stop the writer and write what is queued, for at most close_timeout_s; records
        that could not be written by then are counted in `unwritten` and reported."""
        self._wake.set()
        await self.writer.stop(timeout_s=1.0)
        try:
            await asyncio.wait_for(self._flush_retrying(), close_timeout_s)
        except Exception as exc:
            self.unwritten = len(self._pending) + self.queue.qsize()
            _log.warning(
                "system_logs: %d record(s) could not be written before close (%s)",
                self.unwritten,
                describe(exc) or "timed out",
            )
        super().close()

    async def _flush_retrying(self) -> None:
        """Flush, and after a transient failure (PostgreSQL just back and the pool still
        reconnecting) try again with backoff; the caller bounds the time."""
        pause = 0.1
        while True:
            try:
                await self._flush_all()
                return
            except TransientError as exc:
                _log.info("system_logs: flush on close failed, retrying (%s)", describe(exc))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def flush_now(self) -> None:
        await self._flush_all()

    async def _run(self) -> None:
        while not self.writer.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            await self._flush_all()  # raises to the supervisor: the batch is kept, retried
            self.writer.healthy()

    async def _flush_all(self) -> None:
        while True:
            if not self._pending:
                self._pending = self._take(self.batch_size)
                drops = self._drop_notice()
                if drops is not None:
                    self._pending.append(drops)
            if not self._pending:
                return
            await self._write(self._pending)
            self._pending = []

    def _take(self, n: int) -> list[tuple[Any, ...]]:
        batch: list[tuple[Any, ...]] = []
        with contextlib.suppress(queue.Empty):
            while len(batch) < n:
                batch.append(self.queue.get_nowait())
        return batch

    def _drop_notice(self) -> tuple[Any, ...] | None:
        with self._lock:
            count, self._unreported_drops = self._unreported_drops, 0
        if not count:
            return None
        record = logging.LogRecord(
            "tradestore.system_logs",
            logging.WARNING,
            __file__,
            0,
            "%d log records were dropped: the queue was full",
            (count,),
            None,
        )
        record.__dict__.update(category="LOGGING", dropped=count)
        return to_row(record)

    async def _write(self, batch: list[tuple[Any, ...]]) -> None:
        times = [row[0] for row in batch]
        await self.partitions.ensure("system_logs", min(times), max(times))
        async with self.db.transaction() as conn:
            await conn.execute(STAGE_SQL)
            async with conn.cursor() as cur, cur.copy(COPY_STAGE_SQL) as copy:
                copy.set_types(COPY_TYPES)
                for row in batch:
                    await copy.write_row(row)
            await conn.execute(INSERT_STAGED)
        self.written += len(batch)


def _uuid(value: Any) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)  # extras of any type: never fail a log call


def _ip(value: Any) -> str | None:
    """A valid INET or None: one bad address must not fail a whole batch."""
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]
