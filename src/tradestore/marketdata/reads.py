"""Candle reads: binary COPY TO STDOUT into numpy, no Python object per row.

The server casts each NUMERIC(18,8) to int8 (value * 1e8, exact) and fills NULLs with
sentinels, so every row has the same width and the stream is one `np.frombuffer`.
Ranges are inclusive at both ends (the seed's BETWEEN). Nothing is truncated: a limit
applies only when given.

Ranges that end before the still-open candle are cached in Redis (the raw COPY bytes,
up to RANGE_CACHE_MAX_BYTES), keyed by the series' catalog version, which every ingest
that changes rows bumps in the same transaction: a cached range is never served after a
correction of that series committed, even if Redis was down when it was written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from psycopg import sql
from redis.exceptions import RedisError

from tradestore.db.database import Database
from tradestore.errors import ValidationError
from tradestore.keys import Keys
from tradestore.marketdata import binary
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.validation import check_symbol
from tradestore.redis_link import RedisLink
from tradestore.timeframes import Timeframe

SCALED_COLUMNS = sql.SQL("""
    timestamp,
    (open * 100000000)::int8, (high * 100000000)::int8, (low * 100000000)::int8,
    (close * 100000000)::int8, (volume * 100000000)::int8,
    coalesce(trades_count, -1)::int4,
    coalesce((vwap * 100000000)::int8, -9223372036854775808)
""")
RANGE_SQL = sql.SQL(
    "SELECT {columns} FROM market_data WHERE symbol = {symbol} AND timeframe = {tf}"
    " AND timestamp BETWEEN {start} AND {end} ORDER BY timestamp {limit}"
)
LATEST_SQL = sql.SQL(
    "SELECT * FROM (SELECT {columns} FROM market_data WHERE symbol = {symbol}"
    " AND timeframe = {tf} ORDER BY timestamp DESC LIMIT {n}) x ORDER BY 1"
)
VERSION_SQL = "SELECT version FROM market_data_catalog WHERE symbol = %s AND timeframe = %s"
RANGE_CACHE_TTL_S = 3600
RANGE_CACHE_MAX_BYTES = 4 * 1024 * 1024


class CandleReader:
    def __init__(self, db: Database, link: RedisLink, keys: Keys) -> None:
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
    ) -> CandleFrame:
        check_symbol(symbol)
        tf = Timeframe.parse(timeframe)
        _check_range(start, end)
        if limit is not None and limit < 1:
            raise ValidationError("limit must be at least 1", field="limit", value=limit)
        query = RANGE_SQL.format(
            columns=SCALED_COLUMNS,
            symbol=sql.Literal(symbol),
            tf=sql.Literal(tf.value),
            start=sql.Literal(start),
            end=sql.Literal(end),
            limit=sql.SQL("") if limit is None else sql.SQL("LIMIT {}").format(limit),
        )
        cacheable = end < tf.bucket_start(datetime.now(UTC))
        payload = await self._cached_copy(query, symbol, tf, (start, end, limit), cacheable)
        return to_frame(payload, symbol, tf, exact=exact)

    async def latest(
        self, symbol: str, timeframe: Timeframe | str, n: int = 100, *, exact: bool = False
    ) -> CandleFrame:
        check_symbol(symbol)
        tf = Timeframe.parse(timeframe)
        if n < 1:
            raise ValidationError("n must be at least 1", field="n", value=n)
        query = LATEST_SQL.format(
            columns=SCALED_COLUMNS,
            symbol=sql.Literal(symbol),
            tf=sql.Literal(tf.value),
            n=sql.Literal(n),
        )
        return to_frame(await self.copy_out(query), symbol, tf, exact=exact)

    async def copy_out(self, query: sql.Composable) -> bytes:
        """The binary COPY of a SELECT of SCALED_COLUMNS (values bound as literals)."""
        copy = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)
        buffer = bytearray()
        async with (
            self.db.connection() as conn,
            conn.cursor() as cur,
            cur.copy(copy) as stream,
        ):
            async for data in stream:
                buffer += data
        return bytes(buffer)

    async def _cached_copy(
        self,
        query: sql.Composable,
        symbol: str,
        tf: Timeframe,
        key_parts: tuple[Any, ...],
        cacheable: bool,
    ) -> bytes:
        client = self.link.client
        if not cacheable or client is None:
            return await self.copy_out(query)
        version = await self.db.query_value(VERSION_SQL, (symbol, tf.value))
        if version is None:
            return await self.copy_out(query)
        start, end, limit = key_parts
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
        except (RedisError, OSError) as exc:
            self.link.failed(exc)
            return await self.copy_out(query)
        if isinstance(hit, bytes):
            return hit
        payload = await self.copy_out(query)
        if len(payload) <= RANGE_CACHE_MAX_BYTES:
            try:
                await client.set(key, payload, ex=RANGE_CACHE_TTL_S)
            except (RedisError, OSError) as exc:
                self.link.failed(exc)
        return payload


def to_frame(payload: bytes, symbol: str, tf: Timeframe, *, exact: bool) -> CandleFrame:
    rows = binary.decode_rows(payload)
    convert = binary.scaled_to_decimal if exact else binary.scaled_to_float
    vwap_raw = rows["vwap"].astype(np.int64)
    known = vwap_raw != binary.NO_VWAP
    if exact:
        vwap = np.empty(len(rows), dtype=object)
        vwap[known] = binary.scaled_to_decimal(vwap_raw[known])
    else:
        vwap = np.where(known, vwap_raw / binary.SCALE, np.nan)
    return CandleFrame(
        symbol=symbol,
        timeframe=tf,
        timestamp=binary.pg_to_datetime64(rows["ts"]),
        open=convert(rows["open"]),
        high=convert(rows["high"]),
        low=convert(rows["low"]),
        close=convert(rows["close"]),
        volume=convert(rows["volume"]),
        trades_count=rows["trades_count"].astype(np.int64),
        vwap=vwap,
        exact=exact,
    )


def _check_range(start: datetime, end: datetime) -> None:
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValidationError(
                f"{name} must be a datetime with a time zone", field=name, value=value
            )
    if end < start:
        raise ValidationError(
            f"end ({end.isoformat()}) is before start ({start.isoformat()})", field="end", value=end
        )
