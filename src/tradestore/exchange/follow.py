"""Follow: keep series up to date as candles close, for bots and `market follow`.

Each round backfills every followed series from its last stored candle to the current
bucket (so a restart, or a round lost to the network, leaves no hole), stores the new
closed candles, appends one `candle.closed` event per new candle to the outbox (the
relay publishes it) and yields it. A round that fails after the source's own retries is
logged and the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from tradestore.db.database import Database
from tradestore.errors import ExchangeError, NotFound, TransientError
from tradestore.exchange.backfill import CandleSource, backfill
from tradestore.marketdata.repository import MarketDataRepository
from tradestore.marketdata.validation import series_key
from tradestore.realtime.events import EventType, append_event
from tradestore.timeframes import Timeframe

log = logging.getLogger(__name__)


def poll_interval_s(tf: Timeframe) -> float:
    """A sixth of the timeframe, between 5 s and 60 s: a closed candle shows within that."""
    return max(5.0, min(60.0, tf.seconds / 6))


async def follow(
    md: MarketDataRepository,
    db: Database,
    source: CandleSource,
    symbols: list[str],
    timeframe: Timeframe | str,
    *,
    poll_s: float | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every new closed candle of the symbols, as it is stored (with its `symbol`)."""
    tf = Timeframe.parse_stored(timeframe)
    interval = poll_s if poll_s is not None else poll_interval_s(tf)
    while True:
        for symbol in symbols:
            try:
                for candle in await _round(md, db, source, symbol, tf):
                    yield candle
            except (ExchangeError, TransientError) as exc:
                log.warning("follow %s %s: %s; trying again next round", symbol, tf.value, exc)
        await asyncio.sleep(interval)


async def _round(
    md: MarketDataRepository, db: Database, source: CandleSource, symbol: str, tf: Timeframe
) -> list[dict[str, Any]]:
    since = await _resume_point(md, source.venue, symbol, tf)
    if since >= tf.bucket_start(datetime.now(UTC)):
        return []
    new: list[dict[str, Any]] = []

    async def stored(page: list[dict[str, Any]]) -> None:
        candles = [dict(c, venue=source.venue, symbol=symbol, timeframe=tf.value) for c in page]
        async with db.transaction() as conn:
            for candle in candles:
                await append_event(
                    conn,
                    EventType.CANDLE_CLOSED,
                    candle,
                    aggregate_id=series_key(source.venue, symbol, tf.value),
                )
        new.extend(candles)

    await backfill(md, source, symbol, tf, since, on_stored=stored)
    return sorted(new, key=lambda c: c["timestamp"])


async def _resume_point(
    md: MarketDataRepository, venue: str, symbol: str, tf: Timeframe
) -> datetime:
    """After the last stored candle; for a series not stored yet, the last closed one."""
    try:
        _, after_last = await md.quality.stored_range(symbol, tf, venue=venue)
        return after_last
    except NotFound:
        return tf.bucket_start(datetime.now(UTC)) - tf.delta
