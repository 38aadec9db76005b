"""Closed candle history as column blocks (migration 0023; docs/market-data.md).

A period of a series (1440 candles of its timeframe: a UTC day of 1m candles, 60 days of
1h) that closed more than `compact_after` ago is moved by `Compactor` from market_data
rows into one market_data_block row of columns, TOAST-compressed with lz4. Reads fetch
blocks with binary COPY; the columns they need are BYTEA of big-endian offsets from a
base (block_codec.py, migration 0025), sent as stored and read by numpy as arrays, no
Python object per candle (`BlockSink`), and a bitmap of which of the period's 1440 candle
slots the block holds, from which the timestamps follow (migration 0024).

An ingest of closed history packs the periods it fills from nothing itself
(ingest_blocks.py), with the same encoding.

Writes never go into a block that exists: an ingest that changes or adds candles of a
compacted period, a deletion or rescore that touches one, expands it back into rows
first (`expand`, in the writer's transaction, under the series' ingest lock), and a
later compaction packs it again. So late corrections stay possible and the rows of a
period are always in one place.

The same in both time-series modes (on TimescaleDB since migration 0029): the rows a
block replaces are deleted from the hypertable's chunks.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from tradestore.db.database import Connection, Database, Query
from tradestore.db.partitions import partitions_of
from tradestore.errors import TradeStoreError, TransientError
from tradestore.marketdata import binary, block_codec
from tradestore.marketdata.copy_stream import allocate_columns, grow_columns
from tradestore.marketdata.validation import LOCK_SERIES, series_key
from tradestore.ops.tasks import PlannedAction, Progress
from tradestore.settings import TimeSeriesMode
from tradestore.timeframes import Timeframe

log = logging.getLogger(__name__)

CANDLES_PER_BLOCK = 1440
SLOT_BYTES = CANDLES_PER_BLOCK // 8
BLOCKS_PER_DECODE = 128  # blocks a BlockSink widens at once (~184k candles of 1440)
# What a read selects of a block: where its period starts, which of its 1440 candle slots
# it holds (a bitmap, migration 0024), and the value columns
BLOCK_COLUMNS = (
    "period_start",
    "slots",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "trades_count",
    "vwap",
)
VALUE_FIELDS = BLOCK_COLUMNS[2:]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SERIES = """
SELECT venue, symbol, timeframe FROM market_data_catalog
 WHERE first_ts < %s ORDER BY venue, symbol, timeframe
"""
# The closed periods of a series (from its first candle to its last or `closed_before`)
# that have rows and no block, oldest first: the blocks' key is probed for each period,
# then the rows' for those without a block only (OFFSET 0 keeps that order): a packed
# period has no rows in either mode (a write into it expands its block first), so the
# cheap key probe skips the packed ones. The rows' probe is a subquery a period, not a
# join: so TimescaleDB excludes the other chunks at run time instead of decompressing them.
PERIODS_TO_PACK = """
SELECT p.period_start
  FROM (SELECT c.venue, c.symbol, c.timeframe, g.period_start
          FROM market_data_catalog c
         CROSS JOIN LATERAL generate_series(date_bin(%(length)s, c.first_ts, %(epoch)s),
                                            least(%(closed_before)s - %(length)s, c.last_ts),
                                            %(length)s) AS g(period_start)
         WHERE c.venue = %(venue)s AND c.symbol = %(symbol)s AND c.timeframe = %(timeframe)s
           AND NOT EXISTS (SELECT 1 FROM market_data_block b
                            WHERE b.venue = c.venue AND b.symbol = c.symbol
                              AND b.timeframe = c.timeframe
                              AND b.period_start = g.period_start)
        OFFSET 0) p
 WHERE (SELECT true FROM market_data m
         WHERE m.venue = p.venue AND m.symbol = p.symbol AND m.timeframe = p.timeframe
           AND m.timestamp >= p.period_start AND m.timestamp < p.period_start + %(length)s
         LIMIT 1)
 ORDER BY 1
"""
DIRTY_DAYS = """
SELECT EXISTS (SELECT 1 FROM rollup_dirty WHERE venue = %s AND symbol = %s
                  AND day >= %s AND day < %s)
"""
CLEAR_OWN_MARKERS = """
DELETE FROM rollup_dirty WHERE venue = %s AND symbol = %s AND day >= %s AND day < %s
"""
COMPACT = "SELECT market_data_compact(%s, %s, %s, %s, %s) AS n"
EXPAND = "SELECT market_data_expand(%s, %s, %s, %s, %s) AS n"
SIZE = "SELECT pg_total_relation_size(%s::regclass) > 65536"  # well above an empty one
CLOSED_CHUNKS = """
SELECT chunk_schema AS schema, chunk_name AS name, range_start, range_end
  FROM timescaledb_information.chunks
 WHERE hypertable_name = 'market_data' AND range_end <= %s ORDER BY range_start
"""
ROWS_BETWEEN = "SELECT EXISTS (SELECT 1 FROM market_data WHERE timestamp >= %s AND timestamp < %s)"
# a chunk by its time range (exact chunk bounds: that chunk alone)
DROP_CHUNK = """
SELECT drop_chunks('market_data', newer_than => %s::timestamptz, older_than => %s::timestamptz)
"""
UNDEFINED_TABLE = "42P01"
STATS = """
SELECT count(*) AS blocks, coalesce(sum(row_count), 0) AS candles,
       coalesce(sum(pg_column_size(b.*)), 0) AS bytes
  FROM market_data_block b
"""
BLOCKS_SQL = sql.SQL(
    "SELECT {columns} FROM market_data_block"
    " WHERE venue = {venue} AND symbol = {symbol} AND timeframe = {tf}"
    " AND period_start < {end} AND period_end > {start} ORDER BY period_start"
)
# The newest blocks of a series holding at least n candles, oldest first.
LATEST_BLOCKS_SQL = sql.SQL(
    "SELECT {columns} FROM ("
    " SELECT *, sum(row_count) OVER (ORDER BY period_start DESC) AS upto"
    " FROM market_data_block WHERE venue = {venue} AND symbol = {symbol}"
    " AND timeframe = {tf}) b WHERE upto - row_count < {n} ORDER BY period_start"
)


def blocks_query(
    venue: str, symbol: str, tf: Timeframe, start: datetime, end: datetime
) -> sql.Composed:
    """The BLOCK_COLUMNS of a series' blocks overlapping [start, end), for BlockSink."""
    return BLOCKS_SQL.format(
        **_series(venue, symbol, tf), start=sql.Literal(start), end=sql.Literal(end)
    )


def latest_blocks_query(venue: str, symbol: str, tf: Timeframe, n: int) -> sql.Composed:
    """The BLOCK_COLUMNS of the newest blocks holding at least n candles."""
    return LATEST_BLOCKS_SQL.format(**_series(venue, symbol, tf), n=sql.Literal(n))


def _series(venue: str, symbol: str, tf: Timeframe) -> dict[str, sql.Composable]:
    return {
        "columns": sql.SQL(", ").join(map(sql.Identifier, BLOCK_COLUMNS)),
        "venue": sql.Literal(venue),
        "symbol": sql.Literal(symbol),
        "tf": sql.Literal(tf.value),
    }


def period_length(tf: Timeframe) -> timedelta:
    return timedelta(seconds=tf.seconds * CANDLES_PER_BLOCK)


async def expand(
    conn: Connection, venue: str, symbol: str, timeframe: str, start: datetime, end: datetime
) -> int:
    """Before a write to [start, end) of a series: move its blocks overlapping that range
    back into rows, in the caller's transaction, which holds the series' ingest lock; how
    many candles were moved into rows."""
    cur = await conn.execute(EXPAND, (venue, symbol, timeframe, start, end))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


@dataclass(frozen=True)
class CompactionStatus:
    blocks: int
    candles: int
    bytes: int

    @property
    def bytes_per_candle(self) -> float | None:
        return self.bytes / self.candles if self.candles else None


class Compactor:
    def __init__(self, db: Database, mode: TimeSeriesMode, compact_after: timedelta) -> None:
        self.db = db
        self.mode = mode
        self.compact_after = compact_after

    def ingest_horizon(self, now: datetime | None = None) -> datetime | None:
        """Periods ending by then are closed history that an ingest packs into blocks
        itself (ingest_blocks.py); None when compaction is off."""
        if self.compact_after <= timedelta(0):
            return None
        return (now or datetime.now(UTC)) - self.compact_after

    async def status(self) -> CompactionStatus:
        row = await self.db.query_one(STATS)
        assert row is not None
        return CompactionStatus(int(row["blocks"]), int(row["candles"]), int(row["bytes"]))

    async def compact(
        self, *, now: datetime | None = None, progress: Progress | None = None
    ) -> tuple[int, int]:
        """Compact every period that closed more than `compact_after` before now and whose
        rollups are fresh; (blocks written, candles packed). A period whose day is waiting
        for a rollup refresh is left for the next round."""
        horizon = (now or datetime.now(UTC)) - self.compact_after
        await self._release_emptied(horizon)  # what earlier rounds emptied: see there
        series = await self.db.query(SERIES, (horizon,))
        blocks = candles = 0
        for i, s in enumerate(series, 1):
            done = await self._compact_series(s["venue"], s["symbol"], s["timeframe"], horizon)
            blocks, candles = blocks + done[0], candles + done[1]
            if progress is not None:
                progress(i, len(series))
        return blocks, candles

    async def _release_emptied(self, horizon: datetime) -> None:
        """Give back what compaction emptied in the closed part of market_data: deleted
        rows and their index entries keep their pages until a TRUNCATE, and on
        TimescaleDB an empty chunk still costs every query of the hypertable that spans
        it (a chunk a day: `bench chunks`, a year of them made `latest` 9x slower). So
        emptied partitions are truncated (they stay: inserts of their months need them)
        and emptied chunks dropped (an insert into their range makes a new one).

        This runs before a round packs anything, so what a round empties is given back by
        the next one: TRUNCATE and drop_chunks ignore snapshots, and a read whose snapshot
        predates the compaction that moved the rows into a block sees neither the block
        nor, once the piece is gone, the rows. A read would now have to span two
        maintenance rounds between two of its statements to miss them."""
        if self.mode is TimeSeriesMode.TIMESCALE:
            for chunk in await self.db.query(CLOSED_CHUNKS, (horizon,)):
                span = (chunk["range_start"], chunk["range_end"])
                if await self.db.query_value(ROWS_BETWEEN, span):
                    continue
                where = (chunk["schema"], chunk["name"])
                await self._if_still_empty(where, ROWS_BETWEEN, span, DROP_CHUNK, span)
            return
        for part in await partitions_of(self.db, "market_data"):
            if part.end > horizon or not await self.db.query_value(SIZE, (part.name,)):
                continue  # open, or nothing to give back
            name = sql.Identifier(part.name)
            holds_rows = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name)
            truncate = sql.SQL("TRUNCATE {}").format(name)
            await self._if_still_empty((part.name,), holds_rows, (), truncate)

    async def _if_still_empty(
        self,
        table: tuple[str, ...],
        holds_rows: Query,
        params: tuple[Any, ...],
        act: Query,
        act_params: tuple[Any, ...] = (),
    ) -> None:
        """Run `act` if `holds_rows` says no row is left, with `table` (its name, or schema
        and name) locked against writers from that check to the commit (a second at most:
        a busy table is left for the next round, as is one that is gone meanwhile)."""
        try:
            async with self.db.transaction() as conn:
                await conn.execute("SET LOCAL lock_timeout = '1s'")
                lock = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE")
                await conn.execute(lock.format(sql.Identifier(*table)))
                row = await (await conn.execute(holds_rows, params)).fetchone()
                if row is not None and not row["exists"]:
                    await conn.execute(act, act_params)
        except TransientError as exc:
            log.info("compact: %s is busy, given back later (%s)", ".".join(table), exc)
        except TradeStoreError as exc:
            if exc.sqlstate != UNDEFINED_TABLE:
                raise
            log.info("compact: %s was dropped meanwhile", ".".join(table))

    async def _periods_to_pack(
        self, venue: str, symbol: str, timeframe: str, horizon: datetime
    ) -> list[datetime]:
        length = period_length(Timeframe.parse(timeframe))
        query = {
            "venue": venue,
            "symbol": symbol,
            "timeframe": timeframe,
            "closed_before": _period_start(horizon, length),
            "length": length,
            "epoch": EPOCH,
        }
        return [row["period_start"] for row in await self.db.query(PERIODS_TO_PACK, query)]

    async def _compact_series(
        self, venue: str, symbol: str, timeframe: str, horizon: datetime
    ) -> tuple[int, int]:
        length = period_length(Timeframe.parse(timeframe))
        blocks = candles = 0
        for start in await self._periods_to_pack(venue, symbol, timeframe, horizon):
            n = await self._compact_period(venue, symbol, timeframe, start, start + length)
            blocks, candles = blocks + (n > 0), candles + n
        return blocks, candles

    async def _compact_period(
        self, venue: str, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> int:
        days = (start.date(), (end - timedelta(microseconds=1)).date() + timedelta(days=1))
        # moving the rows marks their days for the rollups
        marks_days = timeframe == Timeframe.M1.value
        async with self.db.transaction() as conn:
            await conn.execute(LOCK_SERIES, (series_key(venue, symbol, timeframe),))
            if marks_days:
                cur = await conn.execute(DIRTY_DAYS, (venue, symbol, *days))
                dirty = await cur.fetchone()
                if dirty and dirty["exists"]:
                    return 0  # its rollups are due: packing it would clear that marker
            cur = await conn.execute(COMPACT, (venue, symbol, timeframe, start, end))
            row = await cur.fetchone()
            if marks_days:
                # the rows' move marked the days; their rollups are already right
                await conn.execute(CLEAR_OWN_MARKERS, (venue, symbol, *days))
        return int(row["n"]) if row else 0

    async def plan(self) -> list[PlannedAction]:
        horizon = datetime.now(UTC) - self.compact_after
        n = 0
        for s in await self.db.query(SERIES, (horizon,)):
            series = (s["venue"], s["symbol"], s["timeframe"])
            n += bool(await self._periods_to_pack(*series, horizon))
        if not n:  # a series whose closed history is packed already has nothing to do
            return []
        return [
            PlannedAction(
                "compact",
                "pack",
                f"candle periods of {n} series closed before {horizon:%Y-%m-%d %H:%M}",
                "into column blocks",
            )
        ]


class CompactTask:
    name = "compact"

    def __init__(self, compactor: Compactor) -> None:
        self.compactor = compactor

    async def plan(self) -> list[PlannedAction]:
        return await self.compactor.plan()

    async def run(self, progress: Progress | None = None) -> list[str]:
        blocks, candles = await self.compactor.compact(progress=progress)
        if not blocks:
            return []
        return [f"compact: {candles} candle(s) packed into {blocks} column block(s)"]


def _period_start(ts: datetime, length: timedelta) -> datetime:
    seconds = int((ts - EPOCH).total_seconds())
    step = int(length.total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step)


# --- decoding -----------------------------------------------------------------------------
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, where a binary timestamptz counts from
INT2, INT4, INT8 = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")
Buffer = bytes | bytearray | memoryview  # what a COPY stream yields


class BlockSink:
    """Candles of a binary COPY of BLOCK_COLUMNS of one timeframe (`step_us` a candle),
    decoded into the columns ColumnSink gives: timestamps datetime64[us] (the period's
    start plus each set slot's offset); prices, volume and vwap float64 (NaN for unknown
    vwap), or exact scaled int64 when `exact`; trades int64.

    Each block's columns are located in the message that holds it and kept as views (no
    payload is copied); every BLOCKS_PER_DECODE blocks they are widened from their frame
    of reference (block_codec) together, a few numpy operations a column for the whole
    batch instead of a few a block, so decoding still overlaps the transfer and holds at
    most a batch of messages. The messages fed must not change afterwards."""

    def __init__(self, capacity: int, *, step_us: int, exact: bool) -> None:
        self.exact = exact
        self.n = 0
        self._pending: Buffer = b""
        self._header_done = False
        self._ended = False
        self.columns = allocate_columns(capacity, exact=exact)
        self._slot_offsets = np.arange(CANDLES_PER_BLOCK, dtype=np.int64) * step_us
        self._starts: list[int] = []
        self._slots: list[npt.NDArray[np.uint8]] = []
        self._counts: list[int] = []
        self._values: dict[str, list[block_codec.Column]] = {name: [] for name in VALUE_FIELDS}

    def feed(self, message: Buffer) -> None:
        """One COPY message: PostgreSQL sends a block a message, so the block's columns
        are read from the message itself; a message cut elsewhere is joined first."""
        data = bytes(self._pending) + bytes(message) if self._pending else message
        pos = 0 if self._header_done else binary.header_length(data)
        if pos is None:
            self._pending = data
            return
        self._header_done = True
        while pos + 2 <= len(data):
            if INT2.unpack_from(data, pos)[0] == -1:  # the trailer
                self._ended = True
                pos += 2
                break
            fields = _field_positions(data, pos + 2)
            if fields is None:
                break
            self._locate_block(data, fields)
            pos = fields[-1]
        self._pending = data[pos:]
        if len(self._starts) >= BLOCKS_PER_DECODE:
            self._decode()

    def append(self, columns: dict[str, npt.NDArray[Any]]) -> None:
        """Candles already decoded into the same columns (the rows beside the blocks)."""
        self._decode()
        count = len(columns["timestamp"])
        self._reserve(count)
        for name, values in columns.items():
            self.columns[name][self.n : self.n + count] = values
        self.n += count

    def finish(self) -> dict[str, npt.NDArray[Any]]:
        if not self._ended or self._pending:
            raise ValueError("truncated binary COPY stream of column blocks")
        self._decode()
        return {name: column[: self.n] for name, column in self.columns.items()}

    def _locate_block(self, data: Buffer, fields: list[int]) -> None:
        """Note where the columns of a block are (`fields`: where each value starts)."""
        self._starts.append(INT8.unpack_from(data, fields[0])[0])
        if fields[2] - fields[1] != 4 + SLOT_BYTES:
            raise ValueError(f"a block's slot bitmap is not {SLOT_BYTES} bytes")
        bits = np.frombuffer(data, np.uint8, SLOT_BYTES, fields[1])
        count = int.from_bytes(bits, "little").bit_count()
        self._slots.append(bits)
        self._counts.append(count)
        for name, at in zip(VALUE_FIELDS, fields[2:-1], strict=True):
            self._values[name].append(block_codec.read_column(data, at, count))

    def _decode(self) -> None:
        """Write the candles of the blocks located so far, in their order."""
        if not self._starts:
            return
        counts = np.array(self._counts, dtype=np.int64)
        total = int(counts.sum())
        self._reserve(total)
        window = slice(self.n, self.n + total)
        held = np.unpackbits(np.stack(self._slots), axis=1, bitorder="little").view(bool)
        starts = np.array(self._starts, dtype=np.int64) + PG_EPOCH_US
        stamps = (starts[:, None] + self._slot_offsets)[held]  # row by row: time order
        self.columns["timestamp"].view(np.int64)[window] = stamps
        for name, columns in self._values.items():
            self._store(name, block_codec.unpack_many(columns, counts), window)
            columns.clear()
        self.n += total
        self._starts.clear()
        self._slots.clear()
        self._counts.clear()

    def _store(self, name: str, scaled: npt.NDArray[np.int64], window: slice) -> None:
        out = self.columns[name][window]
        if name == "trades_count" or self.exact:
            out[:] = scaled
            return
        np.divide(scaled, binary.SCALE, out=out)  # int to float64, then / 1e8: exact
        if name == "vwap":
            out[scaled == binary.NO_VWAP] = np.nan

    def _reserve(self, count: int) -> None:
        needed = self.n + count
        if needed <= len(self.columns["timestamp"]):
            return
        capacity = max(needed, 2 * len(self.columns["timestamp"]))
        self.columns = grow_columns(self.columns, self.n, capacity, exact=self.exact)


def _field_positions(data: Buffer, pos: int) -> list[int] | None:
    """Where each field of the tuple whose first field's length is at pos starts, then
    where the tuple ends; None when data holds only part of it."""
    positions = []
    for _ in BLOCK_COLUMNS:
        if pos + 4 > len(data):
            return None
        positions.append(pos + 4)
        pos += 4 + INT4.unpack_from(data, pos)[0]
    positions.append(pos)
    return positions if pos <= len(data) else None
