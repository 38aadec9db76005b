"""The dYdX v4 indexer's candles endpoint (facts in ../shared/formats.md).

`GET {base}/v4/candles/perpetualMarkets/{ticker}?resolution=&fromISO=&toISO=&limit=`:
newest first, `fromISO` inclusive and `toISO` exclusive on `startedAt`, at most 1000 a
page. Every request first takes a token from tradestore's own rate limiter (shared by
every process through Redis); a 429 waits its `Retry-After` (milliseconds), a
`RateLimit-Remaining` of 0 waits for `RateLimit-Reset` (epoch ms); 5xx answers, timeouts,
dropped connections and truncated bodies are retried with capped exponential backoff and
jitter; any other 4xx is one ExchangeError line (bad ticker, bad resolution).

What is kept of a candle: open/high/low/close, `baseTokenVolume` as volume, `trades`, and
`usdVolume / baseTokenVolume` (rounded half-even to 8 decimals) as vwap, all from their
decimal strings (passed on as text, which the ingest reads exactly), never floats.
`startingOpenInterest` and the orderbook mid prices have no column in market_data and
are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import httpx

from tradestore.errors import ExchangeError, ValidationError
from tradestore.exchange.retry import Limiter, RequestStats, RetryPolicy, retry_after_s
from tradestore.timeframes import Timeframe

log = logging.getLogger(__name__)

RESOLUTIONS = {
    Timeframe.M1: "1MIN",
    Timeframe.M5: "5MINS",
    Timeframe.M15: "15MINS",
    Timeframe.M30: "30MINS",
    Timeframe.H1: "1HOUR",
    Timeframe.H4: "4HOURS",
    Timeframe.D1: "1DAY",
}
PAGE_LIMIT = 1000
# an indexer that cannot be reached at all (no network, a wrong URL) is said within seconds,
# not after the whole retry ladder meant for an indexer that answers badly
CONNECT_ATTEMPTS = 3
EIGHT_PLACES = Decimal("0.00000001")


class DydxIndexer:
    name = "dydx"
    venue = "dydx"  # its tickers (BTC-USD) are perpetual markets
    page_limit = PAGE_LIMIT

    def __init__(
        self,
        base_url: str,
        limiter: Limiter,
        *,
        retry: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.client = client or httpx.AsyncClient(timeout=self.retry.timeout_s)
        self.stats = RequestStats()

    async def open(self) -> None:
        """Nothing to load: the indexer is asked per request."""

    async def aclose(self) -> None:
        await self.client.aclose()

    async def candles(
        self, ticker: str, tf: Timeframe, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Up to PAGE_LIMIT candles with start <= startedAt < end, the newest ones, as
        tradestore candle dicts, oldest first."""
        resolution = RESOLUTIONS.get(tf)
        if resolution is None:
            raise ValidationError(f"dydx has no {tf.value} candles", field="timeframe")
        body = await self._get(
            f"{self.base_url}/v4/candles/perpetualMarkets/{ticker}",
            {
                "resolution": resolution,
                "fromISO": _iso(start),
                "toISO": _iso(end),
                "limit": PAGE_LIMIT,
            },
        )
        raw = body.get("candles") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise ExchangeError(f"dydx: unexpected answer for {ticker} (no candle list)")
        return [to_candle(c) for c in reversed(raw)]

    async def _get(self, url: str, params: dict[str, Any]) -> Any:
        last = "no answer"
        for attempt in range(self.retry.attempts):
            await self.limiter.acquire()
            self.stats.requests += 1
            try:
                response = await self.client.get(url, params=params)
            except httpx.ConnectError as exc:  # no route, refused, unknown host
                if attempt + 1 >= CONNECT_ATTEMPTS:
                    raise ExchangeError(f"dydx: cannot reach {self.base_url} ({exc})") from None
                last = f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:  # timeouts and dropped connections
                last = f"{type(exc).__name__}: {exc}"
            else:
                await self._respect_remaining(response)
                if response.status_code == 429:
                    self.stats.rate_limited += 1
                    await asyncio.sleep(_retry_after_s(response) or self.retry.pause(attempt))
                    self.stats.retries += 1
                    continue
                if 400 <= response.status_code < 500:
                    raise ExchangeError(f"dydx: {_client_error(response)}")
                if response.status_code < 300:
                    try:
                        return response.json()
                    except ValueError:
                        last = "a truncated or invalid JSON body"
                else:
                    last = f"HTTP {response.status_code}"
            self.stats.retries += 1
            log.warning("dydx: %s, retrying (attempt %d)", last, attempt + 1)
            await asyncio.sleep(self.retry.pause(attempt))
        raise ExchangeError(f"dydx: gave up after {self.retry.attempts} attempts ({last})")

    async def _respect_remaining(self, response: httpx.Response) -> None:
        """When the indexer says no request is left, wait for its reset."""
        remaining = response.headers.get("RateLimit-Remaining")
        reset = response.headers.get("RateLimit-Reset")
        if remaining != "0" or reset is None:
            return
        try:
            wait_s = int(reset) / 1000 - time.time()
        except ValueError:
            return
        if wait_s > 0:
            await asyncio.sleep(min(wait_s, self.retry.cap_s))


def to_candle(raw: dict[str, Any]) -> dict[str, Any]:
    """A tradestore candle from an indexer candle. Prices and volume stay the decimal
    strings the indexer sent (exact; the ingest reads text exactly, and in bulk)."""
    try:
        volume = Decimal(raw["baseTokenVolume"])
        vwap = (
            (Decimal(raw["usdVolume"]) / volume).quantize(EIGHT_PLACES, ROUND_HALF_EVEN)
            if volume
            else None
        )
        candle = {
            "timestamp": datetime.fromisoformat(raw["startedAt"].replace("Z", "+00:00")),
            "trades_count": raw.get("trades"),
            "vwap": None if vwap is None else str(vwap),
            "volume": raw["baseTokenVolume"],
        }
        for name in ("open", "high", "low", "close"):
            candle[name] = str(raw[name])
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise ExchangeError(f"dydx: a candle the indexer sent cannot be read ({exc!r})") from None
    return candle


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _retry_after_s(response: httpx.Response) -> float | None:
    """dYdX's Retry-After is in milliseconds."""
    return retry_after_s(response.headers.get("Retry-After"), per_second=1000)


def _client_error(response: httpx.Response) -> str:
    """The indexer's own words for a 4xx: `errors[0].msg` (with the parameter), or
    `error`; the status otherwise."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0]
        if isinstance(first, dict):
            where = f" ({first['param']}: {first.get('value')!r})" if first.get("param") else ""
            return f"{first.get('msg', 'bad request')}{where}"
    if isinstance(body, dict) and "error" in body:
        return f"{body['error']} (HTTP {response.status_code})"
    return f"HTTP {response.status_code}"
