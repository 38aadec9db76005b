"""Bulk ingest of closed history straight into column blocks.

An import of old candles (a file, an exchange backfill) would otherwise insert every
candle as a row, index it, and have `maintain` move it into a block later. When a chunk
of an ingest (its exact scaled int64 columns, sorted by time) holds candles of periods
that closed before the compaction horizon and hold nothing of the series yet (no row, no
block), the client encodes those periods as blocks (the layout of blocks.py) and inserts
them in the ingest's transaction; only the rest of the chunk goes on to the staging
table and market_data as rows. Packed 1m days are marked for the rollup refresh, as a
trigger marks days whose rows change; the refresh reads rows and blocks alike.

Candles that reach packed periods are first compared with the blocks: those a block
holds already with the same values are left there (an import run again writes nothing),
and only the periods of new or changed candles move back into rows (`expand_periods`).

So the blocks' invariant holds: a period's candles are in one place. A period that a
chunk boundary splits gets a block from the first chunk; the next chunk's candles are
new to that block, so it moves back into rows and they join it there: that period stays
rows until the next `maintain` packs it again. The same in both time-series modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from tradestore.db.database import Connection
from tradestore.marketdata import binary, block_codec
from tradestore.marketdata.blocks import (
    CANDLES_PER_BLOCK,
    blocks_query,
    expand,
    period_length,
)
from tradestore.marketdata.reads import read_blocks
from tradestore.timeframes import Timeframe

# Which of the chunk's closed periods (pack_closed_periods picks those ending before the
# horizon) to pack: those holding no row and no block of the series. Each check is one
# index probe a period. The rows' probe is a subquery a period, not a join, and is
# bounded by the periods' span as values known when the statement is planned: TimescaleDB
# then plans the chunks of that span only (planning all chunks of years of history took
# 0.3-0.8 s) and excludes the others at run time instead of decompressing them.
PERIODS_TO_PACK = """
SELECT p.period_start FROM unnest(%(periods)s::timestamptz[]) AS p(period_start)
 WHERE NOT EXISTS (SELECT 1 FROM market_data_block b
                    WHERE b.venue = %(venue)s AND b.symbol = %(symbol)s
                      AND b.timeframe = %(timeframe)s AND b.period_start = p.period_start)
   AND (SELECT true FROM market_data m
         WHERE m.venue = %(venue)s AND m.symbol = %(symbol)s
           AND m.timeframe = %(timeframe)s
           AND m.timestamp >= %(first)s AND m.timestamp < %(until)s
           AND m.timestamp >= p.period_start AND m.timestamp < p.period_start + %(length)s
         LIMIT 1) IS NULL
"""
# The blocks, a column of values a parameter: bytea[] bound in binary (%b: as text, the
# hex escaping took three quarters of the statement), the quality scores as text arrays,
# which the server parses in C.
INSERT_BLOCKS = """
INSERT INTO market_data_block (venue, symbol, timeframe, period_start, period_end,
                               row_count, first_ts, last_ts, slots, open, high, low, close,
                               volume, trades_count, vwap, data_quality_score, created_at,
                               data_source)
SELECT %(venue)s, %(symbol)s, %(timeframe)s, b.period_start, b.period_start + %(length)s,
       b.row_count, b.first_ts, b.last_ts, b.slots, b.open, b.high, b.low, b.close,
       b.volume, b.trades_count, b.vwap, b.quality::int2[],
       array_fill((extract(epoch FROM now()) * 1000000)::int8, ARRAY[b.row_count]),
       array_fill(%(source)s::text, ARRAY[b.row_count])
  FROM unnest(%(period_start)s::timestamptz[], %(row_count)s::int4[],
              %(first_ts)s::timestamptz[], %(last_ts)s::timestamptz[], %(slots)b::bytea[],
              %(open)b::bytea[], %(high)b::bytea[], %(low)b::bytea[], %(close)b::bytea[],
              %(volume)b::bytea[], %(trades_count)b::bytea[], %(vwap)b::bytea[],
              %(quality)s::text[])
       AS b(period_start, row_count, first_ts, last_ts, slots, open, high, low, close,
            volume, trades_count, vwap, quality)
"""
# The packed 1m days wait for their rollups like days whose rows changed (the triggers'
# marking, migration 0020: updating a marker locks it until this ingest commits).
MARK_DIRTY = """
INSERT INTO rollup_dirty (venue, symbol, day)
SELECT %(venue)s, %(symbol)s, (p AT TIME ZONE 'UTC')::date
  FROM unnest(%(period_start)s::timestamptz[]) AS p ORDER BY 3
ON CONFLICT (venue, symbol, day) DO UPDATE SET marked_at = now()
"""
PRICE_FIELDS = ("open", "high", "low", "close", "volume", "vwap")


@dataclass(frozen=True)
class PackRule:
    """What an ingest packs: periods that ended by `horizon` (closed history)."""

    horizon: datetime


@dataclass(frozen=True)
class Packed:
    candles: int = 0
    until: datetime | None = None  # the end of the last period packed
    # the chunk's candles left for rows; None when every candle is stored as a row
    rest: npt.NDArray[np.bool_] | None = None


async def pack_closed_periods(
    conn: Connection,
    params: dict[str, Any],
    timeframe: Timeframe,
    rows: dict[str, Any],
    rule: PackRule,
) -> Packed:
    """Insert the chunk's `rows` (ingest.py's columns, sorted by time) of closed, empty
    periods as blocks; in the caller's transaction, which holds the series' ingest lock."""
    length = period_length(timeframe)
    step_us = timeframe.seconds * 1_000_000
    periods = _periods(rows["ts_unix"], step_us * CANDLES_PER_BLOCK)
    closed = [start for start in periods if start + length <= rule.horizon]
    if not closed:  # live candles: nothing to ask the server
        return Packed()
    query = {
        **params,
        "length": length,
        "periods": closed,
        "first": closed[0],
        "until": closed[-1] + length,
    }
    cur = await conn.execute(PERIODS_TO_PACK, query)
    chosen = sorted(row["period_start"] for row in await cur.fetchall())
    if not chosen:
        return Packed()
    blocks = [_block(rows, *periods[start], start, step_us) for start in chosen]
    columns = {name: [block[name] for block in blocks] for name in blocks[0]}
    await conn.execute(INSERT_BLOCKS, {**query, **columns})
    packed = sum(block["row_count"] for block in blocks)
    if timeframe is Timeframe.M1:
        await conn.execute(MARK_DIRTY, {**params, **columns})
    rest = np.ones(rows["n"], dtype=bool)
    for start in chosen:
        first, end = periods[start]
        rest[first:end] = False
    return Packed(packed, chosen[-1] + length, rest)


def _periods(ts_unix: npt.NDArray[np.int64], period_us: int) -> dict[datetime, tuple[int, int]]:
    """Each period the sorted candle times fall in: its start, and its candles' [first,
    end) positions."""
    if not len(ts_unix):
        return {}
    period = ts_unix // period_us
    starts, first = np.unique(period, return_index=True)
    ends = [*first[1:].tolist(), len(ts_unix)]
    return {
        binary.from_unix_us(int(start) * period_us): (int(i), int(end))
        for start, i, end in zip(starts, first, ends, strict=True)
    }


def _block(
    rows: dict[str, Any], first: int, end: int, start: datetime, step_us: int
) -> dict[str, Any]:
    """One period's candles (rows[first:end]) as INSERT_BLOCKS' columns of one block: the
    slots bitmap (bit k is bit k % 8 of byte k / 8), value columns in block_codec's layout."""
    ts = rows["ts_unix"][first:end]
    slots = np.zeros(CANDLES_PER_BLOCK, dtype=bool)
    slots[(ts - (ts[0] - ts[0] % (step_us * CANDLES_PER_BLOCK))) // step_us] = True
    block: dict[str, Any] = {
        "period_start": start,
        "row_count": end - first,
        "first_ts": binary.from_unix_us(int(ts[0])),
        "last_ts": binary.from_unix_us(int(ts[-1])),
        "slots": np.packbits(slots, bitorder="little").tobytes(),
    }
    for name in (*PRICE_FIELDS, "trades_count"):
        block[name] = block_codec.pack_column(rows[name][first:end].astype(np.int64))
    block["quality"] = "{" + ",".join(map(str, rows["quality"][first:end].tolist())) + "}"
    return block


async def unchanged_in_blocks(
    conn: Connection,
    params: dict[str, Any],
    timeframe: Timeframe,
    rows: dict[str, Any],
    compacted_until: datetime,
) -> npt.NDArray[np.bool_]:
    """Which of the chunk's candles a block holds already with the same values (those
    the row upsert would count unchanged): storing them again changes nothing, so their
    periods need not move back into rows. Read in the caller's transaction."""
    ts = rows["ts_unix"]
    same = np.zeros(len(ts), dtype=bool)
    inside = ts < binary.unix_us(compacted_until)
    if not inside.any():
        return same
    start, end = (
        binary.from_unix_us(int(ts[0])),
        binary.from_unix_us(int(ts[inside][-1]) + 1),
    )
    query = blocks_query(params["venue"], params["symbol"], timeframe, start, end)
    step_us = timeframe.seconds * 1_000_000
    stored = await read_blocks(conn, query, step_us, capacity=int(inside.sum()))
    stamps = stored["timestamp"].view(np.int64)
    if not len(stamps):
        return same
    at = np.minimum(np.searchsorted(stamps, ts), len(stamps) - 1)
    held: npt.NDArray[np.bool_] = stamps[at] == ts
    for name in (*PRICE_FIELDS, "trades_count"):
        held &= stored[name][at] == rows[name]
    return held


async def expand_periods(
    conn: Connection,
    params: dict[str, Any],
    timeframe: Timeframe,
    ts_unix: npt.NDArray[np.int64],
    compacted_until: datetime,
) -> int:
    """Move the blocks of the periods these candle times fall in back into rows (in the
    caller's transaction, under the series' ingest lock); how many candles."""
    period_us = timeframe.seconds * 1_000_000 * CANDLES_PER_BLOCK
    series = (params["venue"], params["symbol"], params["timeframe"])
    moved = 0
    for start in _periods(ts_unix[ts_unix < binary.unix_us(compacted_until)], period_us):
        moved += await expand(conn, *series, start, start + timedelta(microseconds=period_us))
    return moved
