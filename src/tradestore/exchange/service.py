"""`store.exchange`: backfill and follow series from a named source.

Sources: `dydx` (the v4 indexer at TRADESTORE_DYDX_INDEXER_URL, rate-limited by a token
bucket of TRADESTORE_DYDX_REQUESTS_PER_S shared through Redis) and `ccxt:<exchange id>`
(any exchange CCXT supports, with the optional extra; TRADESTORE_CCXT_* settings).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from tradestore.db.database import Database
from tradestore.errors import ValidationError
from tradestore.exchange.backfill import BackfillProgress, BackfillResult, CandleSource, backfill
from tradestore.exchange.ccxt_source import CcxtExchange, new_exchange
from tradestore.exchange.dydx import DydxIndexer
from tradestore.exchange.follow import follow
from tradestore.exchange.retry import RetryPolicy
from tradestore.marketdata.repository import MarketDataRepository
from tradestore.realtime.ratelimit import RateLimiter
from tradestore.settings import Settings
from tradestore.timeframes import Timeframe


class ExchangeData:
    def __init__(
        self,
        market_data: MarketDataRepository,
        db: Database,
        rate_limiter: RateLimiter,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.market_data = market_data
        self.db = db
        self.rate_limiter = rate_limiter
        self.settings = settings
        self.retry = retry

    @asynccontextmanager
    async def source(self, name: str) -> AsyncIterator[CandleSource]:
        """An open client of the named source (`dydx` or `ccxt:<exchange id>`), closed
        after use."""
        client = self._dydx() if name == "dydx" else self._ccxt(name)
        try:
            await client.open()
            yield client
        finally:
            await client.aclose()

    def _dydx(self) -> DydxIndexer:
        rate = self.settings.dydx_requests_per_s
        limiter = self.rate_limiter.token_bucket("exchange:dydx", rate=rate, burst=rate)
        return DydxIndexer(self.settings.dydx_indexer_url, limiter, retry=self.retry)

    def _ccxt(self, name: str) -> CcxtExchange:
        prefix, _, exchange_id = name.partition(":")
        if prefix != "ccxt" or not exchange_id:
            raise ValidationError(
                f"unknown source {name!r}: dydx, or ccxt:<exchange id> (ccxt:binance, ...)",
                field="source",
                value=name,
            )
        config = self.settings.ccxt_config.get(exchange_id, {})
        exchange = new_exchange(exchange_id, config, self.settings.ccxt_urls.get(exchange_id))
        rate = self.settings.ccxt_requests_per_s or 1000 / max(float(exchange.rateLimit), 1.0)
        limiter = self.rate_limiter.token_bucket(f"exchange:{exchange_id}", rate=rate, burst=rate)
        return CcxtExchange(exchange, limiter, retry=self.retry)

    async def backfill(
        self,
        source: str,
        symbol: str,
        timeframe: Timeframe | str,
        since: datetime,
        until: datetime | None = None,
        *,
        on_progress: Callable[[BackfillProgress], None] | None = None,
    ) -> BackfillResult:
        """Fetch what the series is missing in [since, until) (see exchange.backfill)."""
        async with self.source(source) as client:
            return await backfill(
                self.market_data, client, symbol, timeframe, since, until, on_progress=on_progress
            )

    async def follow(
        self,
        source: str,
        symbols: list[str],
        timeframe: Timeframe | str,
        *,
        poll_s: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Each new closed candle of the symbols as it is stored (see exchange.follow)."""
        async with self.source(source) as client:
            async for candle in follow(
                self.market_data, self.db, client, symbols, timeframe, poll_s=poll_s
            ):
                yield candle
