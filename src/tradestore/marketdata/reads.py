"""Candle reads: binary COPY TO STDOUT into numpy, no Python object per row.

The server casts each NUMERIC(18,8) to int8 (value * 1e8, exact) and fills NULLs with
sentinels (a summed volume above 92,233,720,368.54775807, possible only in coarse
rollups, is reported as that maximum: the int8 limit; SQL has the exact sum), so every
row has the same width and the stream is one `np.frombuffer`.
Ranges are inclusive at both ends (the seed's BETWEEN). Nothing is truncated: a limit
applies only when given.

Large reads are decoded chunk by chunk as the COPY stream arrives (`ColumnSink`), so the
result is the only large allocation. Small ranges (at most RANGE_CACHE_MAX_BYTES of COPY
data, by the catalog's row count) that end before the still-open candle are cached in
Redis (the raw COPY bytes), keyed by the series' catalog version, which every ingest
that changes rows bumps in the same transaction: a cached range is never served after a
correction of that series committed, even if Redis was down when it was written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from tradestore.db.database import Connection, Database
from tradestore.errors import ValidationError
from tradestore.keys import Keys
from tradestore.marketdata import binary
from tradestore.marketdata.blocks import (
    BlockSink,
    blocks_query,
    latest_blocks_query,
)
from tradestore.marketdata.copy_stream import FLOAT_COLUMNS, ColumnSink
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.validation import check_symbol, check_venue
from tradestore.redis_link import REDIS_ERRORS, RedisLink
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe
from tradestore.times import require_aware

if TYPE_CHECKING:
    from tradestore.db.replicas import ReadRouter

SCALED_COLUMNS = sql.SQL("""
    timestamp,
    (open * 100000000)::int8, (high * 100000000)::int8, (low * 100000000)::int8,
    (close * 100000000)::int8, (least(volume, 92233720368.54775807) * 100000000)::int8,
    least(coalesce(trades_count, -1), 2147483647)::int4,
    coalesce((vwap * 100000000)::int8, -9223372036854775808)
""")
RANGE_SQL = sql.SQL(
    "SELECT {columns} FROM market_data WHERE venue = {venue} AND symbol = {symbol}"
    " AND timeframe = {tf}"
    " AND timestamp >= {start} AND timestamp < {end} ORDER BY timestamp {limit}"
)
LATEST_SQL = sql.SQL(
    "SELECT * FROM (SELECT {columns} FROM market_data WHERE venue = {venue}"
    " AND symbol = {symbol}"
    " AND timeframe = {tf} ORDER BY timestamp DESC LIMIT {n}) x ORDER BY 1"
)
CATALOG_SQL = """
SELECT version, row_count, compacted_until FROM market_data_catalog
 WHERE venue = %s AND symbol = %s AND timeframe = %s
"""
BEGIN_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
RANGE_CACHE_TTL_S = 3600
RANGE_CACHE_MAX_BYTES = 4 * 1024 * 1024
DECODE_BLOCK_BYTES = 1 << 20
ROWS_BESIDE_BLOCKS = 16_384  # first capacity of the rows read beside blocks (they grow)


class CandleReader:
    def __init__(self, db: Database | ReadRouter, link: RedisLink, keys: Keys) -> None:
        self.db = db
        self.link = link
        self.keys = keys

    async def historical(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime,
        end: datetime,
        *,
        limit: int | None = None,
        exact: bool = False,
        venue: str = DEFAULT_VENUE,
    ) -> CandleFrame:
        check_symbol(symbol)
        check_venue(venue)
        tf = Timeframe.parse(timeframe)
        _check_range(start, end)
        if limit is not None and limit < 1:
            raise ValidationError("limit must be at least 1", field="limit", value=limit)
        query = range_query(venue, symbol, tf, start, end, limit)
        async with self._snapshot() as conn:
            catalog = await _catalog(conn, venue, symbol, tf)
            if catalog is None:
                return to_frame(await copy_out(conn, query), symbol, tf, exact=exact)
            bound = _row_bound(int(catalog["row_count"]), tf, start, end, limit)
            compacted_until = catalog["compacted_until"]
            if compacted_until is not None and start < compacted_until:
                packed = blocks_query(venue, symbol, tf, start, min(end, compacted_until))
                # the rows beside blocks are few (the open periods, corrections): their
                # columns start small and grow, not at the size of the whole range
                rows_bound = min(bound, ROWS_BESIDE_BLOCKS)
                rows = await stream_columns(conn, query, rows_bound, exact=exact)
                stored = await _with_blocks(conn, packed, rows, tf, bound, exact=exact)
                merged = order_and_trim(stored, start=start, end=end, newest=False, n=limit)
                return frame_of(merged, symbol, tf, exact=exact)
            small = bound * binary.READ_DTYPE.itemsize <= RANGE_CACHE_MAX_BYTES
            if small and end < tf.bucket_start(datetime.now(UTC)):
                key_parts = (catalog["version"], start, end, limit)
                payload = await self._cached_copy(conn, query, symbol, tf, key_parts)
                return to_frame(payload, symbol, tf, exact=exact)
            columns = await stream_columns(conn, query, bound, exact=exact)
            return frame_of(columns, symbol, tf, exact=exact)

    async def latest(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        n: int = 100,
        *,
        exact: bool = False,
        venue: str = DEFAULT_VENUE,
    ) -> CandleFrame:
        check_symbol(symbol)
        check_venue(venue)
        tf = Timeframe.parse(timeframe)
        if n < 1:
            raise ValidationError("n must be at least 1", field="n", value=n)
        query = LATEST_SQL.format(
            columns=SCALED_COLUMNS,
            venue=sql.Literal(venue),
            symbol=sql.Literal(symbol),
            tf=sql.Literal(tf.value),
            n=sql.Literal(n),
        )
        async with self._snapshot() as conn:
            catalog = await _catalog(conn, venue, symbol, tf)
            rows = await stream_columns(conn, query, n, exact=exact)
            if catalog is None or catalog["compacted_until"] is None:
                return frame_of(rows, symbol, tf, exact=exact)
            packed = latest_blocks_query(venue, symbol, tf, n)
            stored = await _with_blocks(conn, packed, rows, tf, n, exact=exact)
        return frame_of(order_and_trim(stored, newest=True, n=n), symbol, tf, exact=exact)

    async def copy_out(self, query: sql.Composable) -> bytes:
        """The binary COPY of a SELECT of SCALED_COLUMNS (values bound as literals)."""
        async with self.db.connection() as conn:
            return await copy_out(conn, query)

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Connection]:
        """A connection in a REPEATABLE READ, READ ONLY transaction: the catalog, rows and
        blocks a read looks at are of one moment, so a compaction or an expansion that
        commits during the read cannot make a candle appear twice or not at all (the
        pieces a compaction empties are truncated or dropped only by its next round:
        Compactor._release_emptied)."""
        async with self.db.connection() as conn:
            await conn.execute(BEGIN_SNAPSHOT)
            try:
                yield conn
            finally:
                if conn.info.transaction_status != TransactionStatus.UNKNOWN:
                    await conn.execute("ROLLBACK")  # read only: nothing to commit

    async def _cached_copy(
        self,
        conn: Connection,
        query: sql.Composable,
        symbol: str,
        tf: Timeframe,
        key_parts: tuple[Any, ...],
    ) -> bytes:
        client = self.link.client
        if client is None:
            return await copy_out(conn, query)
        version, start, end, limit = key_parts
        key = self.keys.key(
            "md-range",
            symbol,
            tf.value,
            version,
            start.timestamp(),
            end.timestamp(),
            limit or "all",
        )
        try:
            hit = await client.get(key)
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            return await copy_out(conn, query)
        if isinstance(hit, bytes):
            return hit
        payload = await copy_out(conn, query)
        if len(payload) <= RANGE_CACHE_MAX_BYTES:
            try:
                await client.set(key, payload, ex=RANGE_CACHE_TTL_S)
            except REDIS_ERRORS as exc:
                self.link.failed(exc)
        return payload


def range_query(
    venue: str, symbol: str, tf: Timeframe, start: datetime, end: datetime, limit: int | None
) -> sql.Composed:
    """The SCALED_COLUMNS of a series' rows in [start, end), in time order, the first
    `limit`."""
    return RANGE_SQL.format(
        columns=SCALED_COLUMNS,
        venue=sql.Literal(venue),
        symbol=sql.Literal(symbol),
        tf=sql.Literal(tf.value),
        start=sql.Literal(start),
        end=sql.Literal(end),
        limit=sql.SQL("") if limit is None else sql.SQL("LIMIT {}").format(limit),
    )


async def _catalog(conn: Connection, venue: str, symbol: str, tf: Timeframe) -> DictRow | None:
    cur = await conn.execute(CATALOG_SQL, (venue, symbol, tf.value))
    return await cur.fetchone()


def _copy(query: sql.Composable) -> sql.Composed:
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)


async def copy_out(conn: Connection, query: sql.Composable) -> bytes:
    """The binary COPY of a SELECT, joined once (growing one buffer message by message
    copies it over and over)."""
    parts: list[bytes | bytearray | memoryview] = []
    async with conn.cursor() as cur, cur.copy(_copy(query)) as stream:
        async for data in stream:
            parts.append(data)  # each message is its own copy of libpq's buffer
    return b"".join(parts)


async def stream_columns(
    conn: Connection, query: sql.Composable, bound: int, *, exact: bool
) -> dict[str, npt.NDArray[Any]]:
    """The candles of a SELECT of SCALED_COLUMNS, decoded chunk by chunk into columns
    sized for `bound` rows (no whole payload held beside the result)."""
    sink = ColumnSink(bound, exact=exact)
    async with conn.cursor() as cur, cur.copy(_copy(query)) as stream:
        window = bytearray()  # COPY delivers one message per row: decode in blocks
        async for data in stream:
            window += data
            if len(window) >= DECODE_BLOCK_BYTES:
                sink.feed(window)
                window.clear()
        sink.feed(window)
    return sink.finish()


async def _with_blocks(
    conn: Connection,
    query: sql.Composable,
    rows: dict[str, npt.NDArray[Any]],
    tf: Timeframe,
    capacity: int,
    *,
    exact: bool,
) -> dict[str, npt.NDArray[Any]]:
    """The candles of the blocks `query` selects, decoded as they arrive, with `rows`
    (candles read from market_data) after them, in one set of columns."""
    sink = BlockSink(capacity + len(rows["timestamp"]), step_us=tf.seconds * 1_000_000, exact=exact)
    await _feed(conn, query, sink)
    sink.append(rows)
    return sink.finish()


async def _feed(conn: Connection, query: sql.Composable, sink: BlockSink) -> None:
    async with conn.cursor() as cur, cur.copy(_copy(query)) as stream:
        async for message in stream:
            sink.feed(message)


async def read_blocks(
    conn: Connection, query: sql.Composable, step_us: int, *, capacity: int
) -> dict[str, npt.NDArray[Any]]:
    """The candles of the blocks `query` (blocks_query) selects, exact (scaled int64,
    the sentinels of unknown trades and vwap kept), in time order."""
    sink = BlockSink(capacity, step_us=step_us, exact=True)
    await _feed(conn, query, sink)
    return sink.finish()


def _row_bound(
    stored: int, tf: Timeframe, start: datetime, end: datetime, limit: int | None
) -> int:
    """At most how many candles a range read returns: no more than the series holds,
    than the range has buckets, or than the limit."""
    buckets = -int(-(end - start).total_seconds() // tf.seconds)  # ceil: [start, end)
    return max(0, min(stored, buckets, limit if limit is not None else stored))


def order_and_trim(
    merged: dict[str, npt.NDArray[Any]],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    newest: bool,
    n: int | None,
) -> dict[str, npt.NDArray[Any]]:
    """Block candles and rows (never the same candle twice) in time order (`merged`'s
    columns are sorted in place), within [start, end), then the first n (the last n when
    `newest`). Blocks come whole, so
    they may reach past the range; rows of an expanded period may sit between blocks."""
    stamps = merged["timestamp"]
    if len(stamps) > 1 and not (stamps[1:] >= stamps[:-1]).all():  # an expanded period
        # in place, a column at a time: one column's temporary instead of a copy of all,
        # and the float columns stay rows of their one 2-D array (to_pandas)
        order = np.argsort(stamps, kind="stable")
        for values in merged.values():
            values[:] = values[order]
    lo = 0 if start is None else int(np.searchsorted(stamps, _datetime64(start)))
    hi = len(stamps) if end is None else int(np.searchsorted(stamps, _datetime64(end)))
    if n is not None:
        lo, hi = (max(lo, hi - n), hi) if newest else (lo, min(hi, lo + n))
    return {name: values[lo:hi] for name, values in merged.items()}


def _datetime64(ts: datetime) -> np.datetime64:
    return np.datetime64(ts.astimezone(UTC).replace(tzinfo=None), "us")


def to_frame(payload: bytes, symbol: str, tf: Timeframe, *, exact: bool) -> CandleFrame:
    """The candles of a whole binary COPY payload."""
    sink = ColumnSink(len(payload) // binary.READ_DTYPE.itemsize, exact=exact)
    sink.feed(payload)
    return frame_of(sink.finish(), symbol, tf, exact=exact)


def frame_of(
    columns: dict[str, npt.NDArray[Any]], symbol: str, tf: Timeframe, *, exact: bool
) -> CandleFrame:
    """A CandleFrame of ColumnSink columns (exact mode: scaled int64 to Decimal)."""
    values = {name: columns[name] for name in (*FLOAT_COLUMNS, "vwap")}
    if exact:
        vwap_raw = values["vwap"]
        known = vwap_raw != binary.NO_VWAP
        vwap = np.empty(len(vwap_raw), dtype=object)
        vwap[known] = binary.scaled_to_decimal(vwap_raw[known])
        values = {name: binary.scaled_to_decimal(values[name]) for name in FLOAT_COLUMNS}
        values["vwap"] = vwap
    return CandleFrame(
        symbol=symbol,
        timeframe=tf,
        timestamp=columns["timestamp"],
        open=values["open"],
        high=values["high"],
        low=values["low"],
        close=values["close"],
        volume=values["volume"],
        trades_count=columns["trades_count"],
        vwap=values["vwap"],
        exact=exact,
    )


def _check_range(start: datetime, end: datetime) -> None:
    require_aware("start", start)
    require_aware("end", end)
    if end < start:
        raise ValidationError(
            f"end ({end.isoformat()}) is before start ({start.isoformat()})", field="end", value=end
        )
