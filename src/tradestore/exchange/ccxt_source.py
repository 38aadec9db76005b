"""Candles of any exchange that CCXT supports: source `ccxt:<exchange id>`.

CCXT (the optional extra `tradestore[ccxt]`) pages forward: `fetch_ohlcv(symbol,
timeframe, since, limit)` answers the candles from `since` on, oldest first, so one slice
of the backfill is fetched in as many calls as the exchange's page holds. CCXT is made to
keep numbers as the text the exchange sent (`exchange.number = str`): prices and volume
reach the ingest as decimal text, never floats (an exchange that sends JSON numbers is
read by Python's shortest round-trip repr, which is the literal it sent). CCXT's unified
OHLCV has six fields: trades and vwap are not given, so they stay empty.

Every request takes a token from tradestore's own limiter first (a Redis token bucket
shared by every process, `exchange:<id>`); CCXT's own per-process throttle stays on
unless the exchange's config turns it off (`enableRateLimit: false`), since it knows the
weight of each endpoint. Network errors, timeouts, 429s (waiting `Retry-After`, in
seconds as HTTP says) and answers that cannot be read are retried with capped exponential
backoff and jitter; a bad symbol or timeframe is one ExchangeError line.

Where the exchange is: CCXT's own URLs, or an origin given per exchange
(TRADESTORE_CCXT_URLS) that replaces the scheme and host of each of them, keeping paths
(a local mirror, a proxy, the tests' replay server).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from tradestore.db.errors import first_lines
from tradestore.errors import ConfigurationError, ExchangeError, ValidationError
from tradestore.exchange.retry import Limiter, RequestStats, RetryPolicy, retry_after_s
from tradestore.timeframes import Timeframe

log = logging.getLogger(__name__)

DEFAULT_PAGE = 500  # candles an answer holds when the exchange does not say
CONNECT_ATTEMPTS = 3  # an exchange that cannot be reached at all is said within seconds


def new_exchange(exchange_id: str, config: dict[str, Any], origin: str | None) -> Any:
    """An instance of CCXT's async exchange class, keeping numbers as text, its API
    URLs moved to `origin` when one is given."""
    try:
        ccxt = importlib.import_module("ccxt.async_support")
    except ImportError:
        raise ConfigurationError("ccxt sources need CCXT: pip install 'tradestore[ccxt]'") from None
    exchange_class = getattr(ccxt, exchange_id, None) if exchange_id in ccxt.exchanges else None
    if exchange_class is None:
        raise ValidationError(
            f"ccxt has no exchange {exchange_id!r} (ids like binance, kraken, okx)",
            field="source",
            value=exchange_id,
        )
    exchange = exchange_class(config)
    exchange.number = str
    exchange.on_json_response = _strict_json(exchange.on_json_response, ccxt.BadResponse)
    if origin is not None:
        exchange.urls["api"] = _moved(exchange.urls.get("api"), origin.rstrip("/"))
    return exchange


def _strict_json(parse: Callable[[str], Any], bad_response: type[Exception]) -> Any:
    """CCXT reads a body that is not valid JSON (a truncated answer) as no answer at all,
    which fetch_ohlcv returns as an empty page: make it an error, which is retried."""

    def strict(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise bad_response("a truncated or invalid JSON body") from None

    return strict


def _moved(urls: Any, origin: str) -> Any:
    """Every URL in CCXT's `urls['api']` (a string, or nested dicts of them) with its
    scheme and host replaced by origin."""
    if isinstance(urls, dict):
        return {key: _moved(value, origin) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        return origin + urlsplit(urls).path
    return urls


class CcxtExchange:
    def __init__(self, exchange: Any, limiter: Limiter, *, retry: RetryPolicy | None = None):
        self.exchange = exchange
        self.venue = str(exchange.id)
        self.name = "ccxt"  # data_source; the exchange is the venue
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.page_limit = DEFAULT_PAGE
        self.stats = RequestStats()

    async def aclose(self) -> None:
        await self.exchange.close()

    async def candles(
        self, ticker: str, tf: Timeframe, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Every candle with start <= timestamp < end, oldest first, paged forward."""
        self._check(ticker, tf)
        step_ms = int(tf.delta.total_seconds() * 1000)
        since, end_ms = _ms(start), _ms(end)
        rows: list[list[Any]] = []
        while since < end_ms:
            limit = min(self.page_limit, -(-(end_ms - since) // step_ms))
            page = await self._call(self.exchange.fetch_ohlcv, ticker, tf.value, since, limit)
            page = [row for row in page if since <= row[0] < end_ms]
            if not page:
                break
            rows += page
            since = page[-1][0] + step_ms
        return [to_candle(row) for row in rows]

    async def open(self) -> None:
        """Load the exchange's markets (which also tells its page size)."""
        await self._call(self.exchange.load_markets)
        self.page_limit = _page_limit(self.exchange)

    def _check(self, ticker: str, tf: Timeframe) -> None:
        """The symbol and the timeframe are the exchange's."""
        if ticker not in (self.exchange.markets or {}):
            raise ExchangeError(f"{self.venue}: no market {ticker!r} (CCXT's unified symbol)")
        if tf.value not in (self.exchange.timeframes or {}):
            offered = ", ".join(self.exchange.timeframes or {}) or "none"
            raise ValidationError(
                f"{self.venue} has no {tf.value} candles (it has {offered})", field="timeframe"
            )

    async def _call(self, method: Any, *args: Any) -> Any:
        ccxt = importlib.import_module("ccxt.async_support")
        last = "no answer"
        for attempt in range(self.retry.attempts):
            await self.limiter.acquire()
            self.stats.requests += 1
            wait_s = self.retry.pause(attempt)
            try:
                answer = await method(*args)
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:  # 429, 418
                self.stats.rate_limited += 1
                wait_s = _retry_after_s(self.exchange) or wait_s
                last = first_lines(exc)
            except ccxt.NetworkError as exc:
                if _unreachable(exc) and attempt + 1 >= CONNECT_ATTEMPTS:
                    raise ExchangeError(
                        f"{self.venue}: cannot reach the exchange ({exc})"
                    ) from None
                last = f"{type(exc).__name__}: {first_lines(exc)}"
            except (ccxt.BadResponse, ValueError, TypeError, IndexError) as exc:
                last = f"an answer that cannot be read ({type(exc).__name__})"
            except ccxt.BaseError as exc:  # bad symbol, bad request, exchange-side refusal
                raise ExchangeError(f"{self.venue}: {first_lines(exc)}") from None
            else:
                if method != self.exchange.fetch_ohlcv or _is_ohlcv(answer):
                    return answer
                last = "an answer that is not a candle list"
            self.stats.retries += 1
            log.warning("%s: %s, retrying (attempt %d)", self.venue, last, attempt + 1)
            await asyncio.sleep(wait_s)
        raise ExchangeError(f"{self.venue}: gave up after {self.retry.attempts} attempts ({last})")


def to_candle(row: list[Any]) -> dict[str, Any]:
    """A tradestore candle from CCXT's [ms, open, high, low, close, volume]."""
    try:
        candle: dict[str, Any] = {"timestamp": datetime.fromtimestamp(row[0] / 1000, UTC)}
        for name, value in zip(("open", "high", "low", "close", "volume"), row[1:6], strict=True):
            candle[name] = None if value is None else str(value)
    except (TypeError, ValueError, OverflowError, IndexError) as exc:
        raise ExchangeError(f"a candle CCXT returned cannot be read ({exc!r})") from None
    return {**candle, "trades_count": None, "vwap": None}


def _page_limit(exchange: Any) -> int:
    """The most candles one fetch_ohlcv answer holds, from CCXT's `features` (spot first,
    then any market type that says), else DEFAULT_PAGE."""
    features = getattr(exchange, "features", None) or {}
    for kind in ("spot", "swap", "future"):
        limit = _find_limit(features.get(kind))
        if limit:
            return limit
    return DEFAULT_PAGE


def _find_limit(node: Any) -> int | None:
    if not isinstance(node, dict):
        return None
    ohlcv = node.get("fetchOHLCV")
    if isinstance(ohlcv, dict) and isinstance(ohlcv.get("limit"), int):
        return int(ohlcv["limit"])
    for child in node.values():
        limit = _find_limit(child) if isinstance(child, dict) else None
        if limit:
            return limit
    return None


def _is_ohlcv(answer: Any) -> bool:
    return isinstance(answer, list) and all(
        isinstance(row, list) and len(row) >= 6 and isinstance(row[0], int) for row in answer
    )


def _unreachable(exc: BaseException) -> bool:
    """CCXT's error came from the connection itself (DNS, refused, no route): its cause is
    an OSError (aiohttp's connector errors are OSErrors too)."""
    return isinstance(exc.__cause__, OSError)


def _retry_after_s(exchange: Any) -> float | None:
    """Retry-After of CCXT's last answer, in seconds as HTTP says."""
    headers = getattr(exchange, "last_response_headers", None) or {}
    return retry_after_s(next((v for k, v in headers.items() if k.lower() == "retry-after"), None))


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)
