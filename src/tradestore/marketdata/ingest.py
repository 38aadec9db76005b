"""Candle ingest: binary COPY into a staging table, then one upsert per chunk.

Per chunk: rows are validated (each rejected one gets its index and reason), scored,
packed as exact int8 columns and COPYed into a per-connection TEMP table. Candles of
closed periods that hold nothing yet go from there into column blocks
(ingest_blocks.py); then one statement moves the rest into market_data: a plain
`INSERT ... SELECT` (APPEND) when the chunk starts after the series' last stored candle,
else `INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE changed` (UPSERT), which
counts inserted / updated rows (the rest were unchanged). A chunk of a few candles (a
live one) skips the stage: one UPSERT from arrays bound to it. Ingesters of one series take turns
on an advisory lock (LOCK_SERIES), so two of them never hold row locks of the same
series at once and cannot deadlock; different series share no rows. The catalog row of
the series is updated in the same transaction.

Inserted vs updated: a partitioned table cannot return `xmax`, so a row counts as
inserted when its `created_at` (DEFAULT now()) equals this transaction's now(). That is
ambiguous only for a row inserted and then updated by the same transaction, which needs
a chunk overlapping the time range of an earlier chunk; such chunks count the rows that
already exist first instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg.errors import UniqueViolation

from tradestore.db.database import Connection, Database
from tradestore.db.partitions import PartitionManager
from tradestore.errors import ValidationError
from tradestore.marketdata import binary
from tradestore.marketdata.ingest_blocks import (
    Packed,
    PackRule,
    expand_periods,
    pack_closed_periods,
    unchanged_in_blocks,
)
from tradestore.marketdata.inputs import CHUNK_ROWS, Chunk, chunks
from tradestore.marketdata.quality import quality_scores
from tradestore.marketdata.validation import (
    LOCK_SERIES,
    TimeWindow,
    accepted_mask,
    check_spacing,
    check_symbol,
    check_venue,
    series_key,
    validate_chunk,
)
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe

# Ingesters of one series queue on this (transaction-scoped) lock: two long transactions
# writing overlapping ranges chunk by chunk could otherwise each wait for the other's rows.
CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS md_stage (
    ts timestamptz NOT NULL, open int8 NOT NULL, high int8 NOT NULL, low int8 NOT NULL,
    close int8 NOT NULL, volume int8 NOT NULL, trades_count int4 NOT NULL, vwap int8 NOT NULL,
    quality int2 NOT NULL
) ON COMMIT DELETE ROWS
"""
COPY_STAGE = (
    "COPY md_stage (ts, open, high, low, close, volume, trades_count, vwap, quality) "
    "FROM STDIN (FORMAT BINARY)"
)
# A chunk of at most SMALL_CHUNK_ROWS candles (a live candle, a poll's few) is upserted
# from arrays bound to the statement, without the stage's three round trips; only as the
# first chunk of its transaction: a partition made for a later chunk (by another
# connection) is seen by this one only after it processes invalidations, which it does
# when it first locks market_data in a transaction, and on the stage's statements.
SMALL_CHUNK_ROWS = 256
ARRAY_ROWS = """(SELECT TIMESTAMPTZ 'epoch' + u.ts_unix * INTERVAL '1 microsecond' AS ts,
               u.open, u.high, u.low, u.close, u.volume, u.trades_count, u.vwap, u.quality
          FROM unnest(%(ts_unix)s::int8[], %(open)s::int8[], %(high)s::int8[],
                      %(low)s::int8[], %(close)s::int8[], %(volume)s::int8[],
                      %(trades_count)s::int4[], %(vwap)s::int8[], %(quality)s::int2[])
               AS u(ts_unix, open, high, low, close, volume, trades_count, vwap, quality))"""
UPSERT_FROM = """
WITH up AS (
    INSERT INTO market_data AS m (venue, symbol, timeframe, timestamp, open, high, low,
                                  close, volume, trades_count, vwap, data_source,
                                  data_quality_score)
    SELECT %(venue)s, %(symbol)s, %(timeframe)s, s.ts,
           s.open * 0.00000001, s.high * 0.00000001, s.low * 0.00000001,
           s.close * 0.00000001, s.volume * 0.00000001,
           NULLIF(s.trades_count, -1),
           CASE WHEN s.vwap = -9223372036854775808 THEN NULL ELSE s.vwap * 0.00000001 END,
           %(source)s, s.quality
      FROM {source} s
    ON CONFLICT (venue, symbol, timeframe, timestamp) DO UPDATE
       SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
           close = EXCLUDED.close, volume = EXCLUDED.volume,
           trades_count = EXCLUDED.trades_count, vwap = EXCLUDED.vwap,
           data_source = EXCLUDED.data_source, data_quality_score = EXCLUDED.data_quality_score
     WHERE (m.open, m.high, m.low, m.close, m.volume, m.trades_count, m.vwap)
           IS DISTINCT FROM
           (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume,
            EXCLUDED.trades_count, EXCLUDED.vwap)
    RETURNING (m.created_at = now()) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
  FROM up
"""
UPSERT = UPSERT_FROM.format(source="md_stage")
UPSERT_ARRAYS = UPSERT_FROM.format(source=ARRAY_ROWS)
ARRAY_COLUMNS = (
    "ts_unix",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "trades_count",
    "vwap",
    "quality",
)
# Fast path for the common case, data appended after the series' last stored candle:
# every row is new, so there is nothing to compare and no speculative insertion. If a row
# written outside tradestore collides anyway, a savepoint falls back to UPSERT.
APPEND = """
INSERT INTO market_data (venue, symbol, timeframe, timestamp, open, high, low, close,
                         volume, trades_count, vwap, data_source, data_quality_score)
SELECT %(venue)s, %(symbol)s, %(timeframe)s, s.ts,
       s.open * 0.00000001, s.high * 0.00000001, s.low * 0.00000001,
       s.close * 0.00000001, s.volume * 0.00000001,
       NULLIF(s.trades_count, -1),
       CASE WHEN s.vwap = -9223372036854775808 THEN NULL ELSE s.vwap * 0.00000001 END,
       %(source)s, s.quality
  FROM md_stage s
"""
LAST_STORED = """
SELECT last_ts, compacted_until FROM market_data_catalog
 WHERE venue = %(venue)s AND symbol = %(symbol)s AND timeframe = %(timeframe)s
"""
# Rows of the stage already in market_data: needed only when a chunk overlaps the time
# range of an earlier chunk of the same transaction (see _write).
COUNT_EXISTING = """
SELECT count(*) AS n FROM md_stage s
 WHERE EXISTS (SELECT 1 FROM market_data m WHERE m.venue = %(venue)s
                  AND m.symbol = %(symbol)s AND m.timeframe = %(timeframe)s
                  AND m.timestamp = s.ts)
"""
UPDATE_CATALOG = """
INSERT INTO market_data_catalog AS c (venue, symbol, timeframe, first_ts, last_ts, row_count,
                                     compacted_until)
VALUES (%(venue)s, %(symbol)s, %(timeframe)s, %(first)s, %(last)s, %(inserted)s,
        %(compacted_until)s)
ON CONFLICT (venue, symbol, timeframe) DO UPDATE
   SET first_ts = LEAST(c.first_ts, EXCLUDED.first_ts),
       last_ts = GREATEST(c.last_ts, EXCLUDED.last_ts),
       row_count = c.row_count + EXCLUDED.row_count,
       compacted_until = GREATEST(c.compacted_until, EXCLUDED.compacted_until),
       version = CASE WHEN %(changed)s THEN nextval('market_data_catalog_version_seq')
                      ELSE c.version END,
       updated_at = now()
"""


@dataclass(frozen=True)
class RejectedRow:
    index: int  # position in the whole input, 0-based
    reason: str


@dataclass
class IngestResult:
    symbol: str
    timeframe: Timeframe
    venue: str = DEFAULT_VENUE
    inserted: int = 0
    packed: int = 0  # of the inserted, those that went straight into column blocks
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    first: datetime | None = None  # earliest timestamp stored
    last: datetime | None = None  # latest timestamp stored
    last_candle: dict[str, Any] | None = None  # the newest stored candle (exact values)

    @property
    def stored(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def reasons(self) -> dict[str, int]:
        """How many rows were rejected for each reason."""
        counts: dict[str, int] = {}
        for row in self.rejected:
            counts[row.reason] = counts.get(row.reason, 0) + 1
        return counts


IngestProgress = Callable[[int, IngestResult], None]  # (rows read so far, result so far)


class CandleIngest:
    def __init__(
        self,
        db: Database,
        partitions: Callable[[], PartitionManager],
        window: TimeWindow | None = None,
        pack_horizon: Callable[[], datetime | None] | None = None,
    ) -> None:
        self.db = db
        self._partitions = partitions  # async () -> PartitionManager
        self.window = window or TimeWindow()
        # () -> where closed history starts (packed into blocks as it is ingested), or None
        self._pack_horizon = pack_horizon

    async def store(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        data: Any,
        *,
        venue: str = DEFAULT_VENUE,
        source: str = "dydx",
        strict: bool = False,
        atomic: bool = True,
        chunk_rows: int = CHUNK_ROWS,
        on_progress: IngestProgress | None = None,
    ) -> IngestResult:
        check_symbol(symbol)
        check_venue(venue)
        tf = Timeframe.parse_stored(timeframe)
        if not source or len(source) > 20:
            raise ValidationError("source: 1 to 20 characters", field="source", value=source)
        result = IngestResult(symbol=symbol, timeframe=tf, venue=venue)
        partitions: PartitionManager = self._partitions()
        params = {"venue": venue, "symbol": symbol, "timeframe": tf.value, "source": source}
        horizon = self._pack_horizon() if self._pack_horizon is not None else None
        pack = None if horizon is None else PackRule(horizon)
        one_transaction = atomic or strict
        scope = self.db.transaction() if one_transaction else self.db.connection()
        async with scope as conn:
            await self._stream(
                conn,
                data,
                tf,
                params,
                partitions,
                pack,
                result,
                strict,
                chunk_rows,
                on_progress,
                commit_each=not one_transaction,
            )
        return result

    async def _stream(
        self,
        conn: Connection,
        data: Any,
        tf: Timeframe,
        params: dict[str, Any],
        partitions: PartitionManager,
        pack: PackRule | None,
        result: IngestResult,
        strict: bool,
        chunk_rows: int,
        on_progress: IngestProgress | None,
        *,
        commit_each: bool,
    ) -> None:
        read = 0
        written_until: datetime | None = None  # latest timestamp written in this transaction
        for chunk in chunks(data, chunk_rows=chunk_rows):
            read += len(chunk)
            rows = _prepare(chunk, tf, result, self.window)
            if strict and result.rejected:
                raise _strict_error(result)
            if rows is not None:
                last = _bounds(rows["ts_unix"])[1]
                for day in _days(rows["ts_unix"]):  # not the empty months between rows
                    await partitions.ensure("market_data", day, day)
                if commit_each:
                    async with conn.transaction():
                        # the stage is created in the transaction that uses it (_stage):
                        # behind PgBouncer each one may run on another server connection
                        await _lock_series(conn, params)
                        await _write(conn, rows, tf, params, result, pack, None)
                else:
                    if written_until is None:
                        await _lock_series(conn, params)
                    await _write(conn, rows, tf, params, result, pack, written_until)
                    written_until = last if written_until is None else max(written_until, last)
            if on_progress is not None:
                on_progress(read, result)


def _prepare(
    chunk: Chunk, tf: Timeframe, result: IngestResult, window: TimeWindow
) -> dict[str, Any] | None:
    """Validate, drop rejected rows (recording why), sort by time and score."""
    check_spacing(chunk, tf)
    validate_chunk(chunk, result.symbol, tf, window)
    for local, reason in sorted(chunk.rejected.items()):
        result.rejected.append(RejectedRow(index=chunk.offset + local, reason=reason))
    keep = accepted_mask(chunk)
    if not keep.any():
        return None
    order = np.argsort(chunk.ts_us[keep], kind="stable")
    v = {name: values[keep][order] for name, values in chunk.values.items()}
    ts = chunk.ts_us[keep][order]
    rows: dict[str, Any] = {
        "ts_unix": ts,
        "ts": binary.unix_us_to_pg(ts),
        **v,
        "trades_count": chunk.trades_count[keep][order],
        "vwap": chunk.vwap[keep][order],
        "quality": quality_scores(v["open"], v["high"], v["low"], v["close"], v["volume"]),
        "n": int(keep.sum()),
    }
    return rows


async def _write(
    conn: Connection,
    rows: dict[str, Any],
    tf: Timeframe,
    params: dict[str, Any],
    result: IngestResult,
    pack: PackRule | None,
    written_until: datetime | None,
) -> None:
    """One chunk: staged, its closed empty periods packed into blocks (when `pack`), the
    rest (on TimescaleDB all of it) appended or upserted as rows, the catalog updated.
    `written_until`: the latest timestamp earlier chunks of this transaction wrote (None:
    this is its first)."""
    first, last = _bounds(rows["ts_unix"])
    first_in_transaction = written_until is None
    overlap = written_until is not None and first <= written_until
    async with conn.cursor() as cur:
        await cur.execute(LAST_STORED, params)
        stored = await cur.fetchone()
        compacted_until = None if stored is None else stored["compacted_until"]
        todo = rows
        if compacted_until is not None and first < compacted_until:
            # into compacted history (a correction, a backfill, the same file again): what
            # blocks hold already is left there; the periods of the rest become rows
            same = await unchanged_in_blocks(conn, params, tf, rows, compacted_until)
            todo = _subset(rows, ~same) if same.any() else rows
            expanded = await expand_periods(conn, params, tf, todo["ts_unix"], compacted_until)
            overlap = overlap or expanded > 0
        packed = Packed()
        if pack is not None and todo["n"]:
            packed = await pack_closed_periods(conn, params, tf, todo, pack)
        staged = todo if packed.rest is None else _subset(todo, packed.rest)
        inserted, updated = 0, 0
        small = staged["n"] <= SMALL_CHUNK_ROWS and first_in_transaction and not overlap
        if staged["n"] and small:
            inserted, updated = await _upsert_arrays(cur, params, staged)
        elif staged["n"]:
            await _stage(cur, staged)
            stage_first = binary.from_unix_us(int(staged["ts_unix"][0]))
            inserted, updated = await _insert_rows(
                conn, cur, params, staged["n"], stage_first, stored, overlap
            )
        if packed.rest is not None:  # packed instead of stored as rows
            inserted += packed.candles
        await cur.execute(
            UPDATE_CATALOG,
            {
                **params,
                "first": first,
                "last": last,
                "inserted": inserted,
                "changed": inserted + updated > 0,
                "compacted_until": packed.until,
            },
        )
    result.inserted += inserted
    result.packed += packed.candles
    result.updated += updated
    result.unchanged += rows["n"] - inserted - updated
    result.first = first if result.first is None else min(result.first, first)
    if result.last is None or last >= result.last:
        result.last = last
        result.last_candle = _last_candle(rows, last)


async def _upsert_arrays(cur: Any, params: dict[str, Any], rows: dict[str, Any]) -> tuple[int, int]:
    """Upsert a few candles bound as arrays: (inserted, updated)."""
    columns = {name: rows[name].tolist() for name in ARRAY_COLUMNS}
    await cur.execute(UPSERT_ARRAYS, {**params, **columns})
    counts = await cur.fetchone()
    assert counts is not None
    return int(counts["inserted"]), int(counts["updated"])


async def _stage(cur: Any, rows: dict[str, Any]) -> None:
    """COPY the rows into md_stage (created on the connection's first use: it is a temp
    table), emptied first (by the last chunk, or at the commit)."""
    await cur.execute(CREATE_STAGE)
    await cur.execute("TRUNCATE md_stage")
    async with cur.copy(COPY_STAGE) as copy:
        await copy.write(binary.HEADER)
        await copy.write(binary.encode_rows(rows, rows["n"]))
        await copy.write(binary.TRAILER)


def _subset(rows: dict[str, Any], keep: npt.NDArray[np.bool_]) -> dict[str, Any]:
    columns = {k: v[keep] for k, v in rows.items() if isinstance(v, np.ndarray)}
    return {**columns, "n": int(keep.sum())}


async def _insert_rows(
    conn: Connection,
    cur: Any,
    params: dict[str, Any],
    n: int,
    first: datetime,
    stored: dict[str, Any] | None,
    overlap: bool,
) -> tuple[int, int]:
    """Move the stage's n candles into market_data: (inserted, updated)."""
    last_ts = None if stored is None else stored["last_ts"]
    appended = None if overlap else await _append(conn, cur, params, first, last_ts)
    if appended is not None:
        return appended, 0
    return await _upsert(cur, params, n, overlap=overlap)


async def _append(
    conn: Connection, cur: Any, params: dict[str, Any], first: datetime, last_ts: datetime | None
) -> int | None:
    """Insert the stage as new rows when it starts after the series' last candle; the
    number inserted, or None when the upsert must run instead."""
    if last_ts is not None and last_ts >= first:
        return None
    try:
        async with conn.transaction():  # a savepoint: a collision rolls back only this
            await cur.execute(APPEND, params)
            return int(cur.rowcount)
    except UniqueViolation:
        return None


async def _upsert(cur: Any, params: dict[str, Any], n: int, *, overlap: bool) -> tuple[int, int]:
    existing = None
    if overlap:
        await cur.execute(COUNT_EXISTING, params)
        existing = int((await cur.fetchone() or {"n": 0})["n"])
    await cur.execute(UPSERT, params)
    counts = await cur.fetchone()
    assert counts is not None
    inserted, updated = int(counts["inserted"]), int(counts["updated"])
    if existing is not None:
        changed = inserted + updated
        inserted = n - existing
        updated = changed - inserted
    return inserted, updated


def _last_candle(rows: dict[str, Any], when: datetime) -> dict[str, Any]:
    candle: dict[str, Any] = {"timestamp": when}
    for name in ("open", "high", "low", "close", "volume"):
        candle[name] = binary.scaled_to_decimal(rows[name][-1:])[0]
    trades = int(rows["trades_count"][-1])
    candle["trades_count"] = None if trades == binary.NO_TRADES else trades
    return candle


async def _lock_series(conn: Connection, params: dict[str, Any]) -> None:
    await conn.execute(
        LOCK_SERIES, (series_key(params["venue"], params["symbol"], params["timeframe"]),)
    )


def _days(ts_unix: npt.NDArray[np.int64]) -> list[datetime]:
    """The UTC days that have rows (partitions are a day or longer: ensuring each day's
    partition makes exactly the partitions the rows need; known ones cost nothing)."""
    days = np.unique(ts_unix // 86_400_000_000)
    return [binary.from_unix_us(int(d) * 86_400_000_000) for d in days]


def _bounds(ts_unix: npt.NDArray[np.int64]) -> tuple[datetime, datetime]:
    return binary.from_unix_us(int(ts_unix[0])), binary.from_unix_us(int(ts_unix[-1]))


def _strict_error(result: IngestResult) -> ValidationError:
    shown = "; ".join(f"row {r.index}: {r.reason}" for r in result.rejected[:10])
    more = len(result.rejected) - 10
    suffix = f"; and {more} more" if more > 0 else ""
    return ValidationError(
        f"strict mode: the batch was rejected because of {len(result.rejected)} bad "
        f"row(s): {shown}{suffix}",
        field="data",
    )
