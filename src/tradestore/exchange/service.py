"""`store.exchange`: backfill and follow series from a named source.

Sources: `dydx` (the v4 indexer at TRADESTORE_DYDX_INDEXER_URL, rate-limited by a token
bucket of TRADESTORE_DYDX_REQUESTS_PER_S shared through Redis). CCXT exchanges are not
built yet (`ccxt:<id>` says so).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from tradestore.db.database import Database
from tradestore.errors import ValidationError
from tradestore.exchange.backfill import BackfillProgress, BackfillResult, CandleSource, backfill
from tradestore.exchange.dydx import DydxIndexer, RetryPolicy
from tradestore.exchange.follow import follow
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
        """An open client of the named source, closed after use."""
        if name != "dydx":
            raise ValidationError(
                f"unknown source {name!r}: dydx is the one built so far (CCXT exchanges: not yet)",
                field="source",
                value=name,
            )
        rate = self.settings.dydx_requests_per_s
        limiter = self.rate_limiter.token_bucket("exchange:dydx", rate=rate, burst=rate)
        indexer = DydxIndexer(self.settings.dydx_indexer_url, limiter, retry=self.retry)
        try:
            yield indexer
        finally:
            await indexer.aclose()

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
