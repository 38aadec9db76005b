"""The latest candle and ticker per symbol (and timeframe) in Redis: one hash each, set
by ingest (and by callers for tickers), read in O(1) with the time it was set. Redis
trouble here is reported once and never fails the write that triggered it.

The latest candle only moves forward in time: a Lua script compares the stored candle's
timestamp with the new one's (epoch milliseconds in field `ts`) and keeps the newer, so a
backfill of 2019, or two ingests that finish out of order, cannot replace the live one.
A candle of the same timestamp replaces it (a correction of the open candle)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tradestore.cache import codec
from tradestore.keys import Keys
from tradestore.redis_link import REDIS_ERRORS, RedisLink
from tradestore.symbols import DEFAULT_VENUE

# KEYS[1] the hash; ARGV: ts (epoch ms), body, set_at. Returns 1 if stored.
SET_IF_NOT_OLDER = """
local current = redis.call('HGET', KEYS[1], 'ts')
if current and tonumber(current) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'ts', ARGV[1], 'body', ARGV[2], 'set_at', ARGV[3])
return 1
"""


class LatestMarketData:
    def __init__(self, link: RedisLink, keys: Keys) -> None:
        self.link = link
        self.keys = keys

    async def record_candle(
        self, symbol: str, timeframe: str, candle: dict[str, Any], *, venue: str = DEFAULT_VENUE
    ) -> bool:
        """Record the candle unless a newer one is stored; whether it was stored."""
        client = self.link.client
        if client is None:
            return False
        stamp: datetime = candle["timestamp"]
        try:
            stored = await client.eval(
                SET_IF_NOT_OLDER,
                1,
                self._candle_key(venue, symbol, timeframe),
                str(int(stamp.timestamp() * 1000)),
                codec.dumps(candle),
                datetime.now(UTC).isoformat(),
            )
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            return False
        return bool(stored)

    async def forget_candle(
        self, symbol: str, timeframe: str, *, venue: str = DEFAULT_VENUE
    ) -> None:
        """Drop the recorded latest candle (its candles were deleted); the next ingest
        records one again."""
        client = self.link.client
        if client is None:
            return
        try:
            await client.delete(self._candle_key(venue, symbol, timeframe))
        except REDIS_ERRORS as exc:
            self.link.failed(exc)

    async def get_candle(
        self, symbol: str, timeframe: str, *, venue: str = DEFAULT_VENUE
    ) -> dict[str, Any] | None:
        return await self._get(self._candle_key(venue, symbol, timeframe))

    def _candle_key(self, venue: str, symbol: str, timeframe: str) -> str:
        return self.keys.key("latest-candle", venue, symbol, timeframe)

    async def record_ticker(self, symbol: str, ticker: dict[str, Any]) -> None:
        await self._set(self.keys.key("latest-ticker", symbol), ticker)

    async def get_ticker(self, symbol: str) -> dict[str, Any] | None:
        return await self._get(self.keys.key("latest-ticker", symbol))

    async def _set(self, key: str, body: dict[str, Any]) -> None:
        client = self.link.client
        if client is None:
            return
        payload = codec.dumps(body)  # Decimal and datetime stay exact
        try:
            await client.hset(
                key, mapping={"body": payload, "set_at": datetime.now(UTC).isoformat()}
            )
        except REDIS_ERRORS as exc:
            self.link.failed(exc)

    async def _get(self, key: str) -> dict[str, Any] | None:
        client = self.link.client
        if client is None:
            return None
        try:
            raw = await client.hgetall(key)
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            return None
        if not raw:
            return None
        body: dict[str, Any] = codec.loads(raw[b"body"])
        set_at = raw[b"set_at"]
        body["set_at"] = datetime.fromisoformat(
            set_at.decode() if isinstance(set_at, bytes) else set_at
        )
        return body
