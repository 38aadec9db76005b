"""The latest candle and ticker per symbol (and timeframe) in Redis: one hash each, set
by ingest (and by callers for tickers), read in O(1) with the time it was set. Redis
trouble here is reported once and never fails the write that triggered it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from tradestore.cache import codec
from tradestore.keys import Keys
from tradestore.redis_link import RedisLink


class LatestMarketData:
    def __init__(self, link: RedisLink, keys: Keys) -> None:
        self.link = link
        self.keys = keys

    async def record_candle(self, symbol: str, timeframe: str, candle: dict[str, Any]) -> None:
        await self._set(self.keys.key("latest-candle", symbol, timeframe), candle)

    async def get_candle(self, symbol: str, timeframe: str) -> dict[str, Any] | None:
        return await self._get(self.keys.key("latest-candle", symbol, timeframe))

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
        except (RedisError, OSError) as exc:
            self.link.failed(exc)

    async def _get(self, key: str) -> dict[str, Any] | None:
        client = self.link.client
        if client is None:
            return None
        try:
            raw = await client.hgetall(key)
        except (RedisError, OSError) as exc:
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
