"""Deleting candles of one series, whole or over [since, until).

Month by month, each window in its own transaction holding the series' ingest lock
(LOCK_SERIES), so no statement nears the timeout and no ingest of the series interleaves.
The catalog row is recounted at the end (a new version: no cached range of the deleted
candles is served again). Column blocks of the window are expanded into rows first, so
rollups follow by themselves: native triggers mark the days, TimescaleDB invalidates its
aggregates.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tradestore.db.database import Database
from tradestore.errors import NotFound
from tradestore.marketdata.blocks import expand
from tradestore.marketdata.validation import LOCK_SERIES, check_symbol, check_venue, series_key
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe

WINDOW = timedelta(days=31)
SERIES_RANGE = """
SELECT first_ts, last_ts FROM market_data_catalog
 WHERE venue = %s AND symbol = %s AND timeframe = %s
"""
DELETE_WINDOW = """
DELETE FROM market_data WHERE venue = %s AND symbol = %s AND timeframe = %s
   AND timestamp >= %s AND timestamp < %s
"""
RECOUNT = "SELECT market_data_catalog_refresh(%s, %s, %s)"


async def delete_candles(
    db: Database,
    symbol: str,
    timeframe: Timeframe | str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    venue: str = DEFAULT_VENUE,
) -> int:
    """How many candles were deleted; NotFound when the series is not stored."""
    check_symbol(symbol)
    check_venue(venue)
    tf = Timeframe.parse_stored(timeframe)
    stored = await db.query_one(SERIES_RANGE, (venue, symbol, tf.value))
    if stored is None:
        raise NotFound(f"no {symbol} {tf.value} candles of {venue} are stored")
    start = max(since or stored["first_ts"], stored["first_ts"])
    end = min(until or stored["last_ts"] + tf.delta, stored["last_ts"] + tf.delta)
    deleted = 0
    window_start = start
    while window_start < end:
        window_end = min(window_start + WINDOW, end)
        async with db.transaction() as conn:
            await conn.execute(LOCK_SERIES, (series_key(venue, symbol, tf.value),))
            await expand(conn, venue, symbol, tf.value, window_start, window_end)
            cur = await conn.execute(
                DELETE_WINDOW, (venue, symbol, tf.value, window_start, window_end)
            )
            deleted += cur.rowcount
        window_start = window_end
    await db.execute(RECOUNT, (venue, symbol, tf.value))
    return deleted
