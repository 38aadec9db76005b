"""`store.market_data`: the seed's MarketDataRepository, fast and exact."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradestore.db.database import Database
from tradestore.errors import NotFound
from tradestore.keys import Keys
from tradestore.marketdata.checks import QualityChecks
from tradestore.marketdata.deletion import delete_candles
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.ingest import CandleIngest, IngestProgress, IngestResult
from tradestore.marketdata.inputs import CHUNK_ROWS
from tradestore.marketdata.reads import CandleReader
from tradestore.marketdata.resample import resample
from tradestore.marketdata.validation import TimeWindow
from tradestore.redis_link import RedisLink
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe

SERIES_SQL = """
SELECT venue, symbol, timeframe, first_ts, last_ts, row_count, updated_at
  FROM market_data_catalog
 WHERE (%(symbol)s::text IS NULL OR symbol = %(symbol)s)
   AND (%(venue)s::text IS NULL OR venue = %(venue)s)
 ORDER BY venue, symbol, timeframe
"""


@dataclass(frozen=True)
class StoredSeries:
    """One stored series, as the catalog knows it (no scan of market_data)."""

    venue: str
    symbol: str
    timeframe: str
    first_ts: datetime  # the first candle's start
    last_ts: datetime  # the last candle's start
    row_count: int
    updated_at: datetime


if TYPE_CHECKING:
    from tradestore.db.partitions import PartitionManager
    from tradestore.db.replicas import ReadRouter
    from tradestore.marketdata.rollups import Rollups

AfterIngest = Callable[[IngestResult], Awaitable[None]]
AfterDelete = Callable[[str, str, Timeframe], Awaitable[None]]  # venue, symbol, timeframe


class MarketDataRepository:
    def __init__(
        self,
        db: Database,
        link: RedisLink,
        keys: Keys,
        partitions: Callable[[], PartitionManager],
        window: TimeWindow | None = None,
        *,
        reads: Database | ReadRouter | None = None,
        pack_horizon: Callable[[], datetime | None] | None = None,
    ) -> None:
        self.db = db
        self._ingest = CandleIngest(db, partitions, window or TimeWindow(), pack_horizon)
        # history reads tolerate staleness: a replica when one is configured
        self.reader = CandleReader(reads or db, link, keys)
        self._primary_reader = self.reader if reads is None else CandleReader(db, link, keys)
        self.quality = QualityChecks(db, self.reader)
        self.after_ingest: list[AfterIngest] = []  # called after each store_candles commit
        self.after_delete: list[AfterDelete] = []  # called after each delete
        # set by TradeStore: () -> Rollups, for coarse timeframes not stored natively
        self.coarse_source: Callable[[], Rollups] | None = None

    async def store_candles(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        data: Any,
        *,
        venue: str = DEFAULT_VENUE,
        source: str = "dydx",
        strict: bool = False,
        atomic: bool = True,
        chunk_rows: int = CHUNK_ROWS,
        on_progress: IngestProgress | None = None,
    ) -> IngestResult:
        """Upsert candles (see tradestore.marketdata.inputs for what `data` may be).

        Returns inserted / updated / unchanged counts and every rejected row's index and
        reason. `strict=True` rejects the whole batch if any row is bad. `atomic=False`
        commits chunk by chunk (long imports keep their progress and hold locks briefly).
        A series is (venue, symbol, timeframe); see marketdata.validation for symbols.
        """
        result = await self._ingest.store(
            symbol,
            timeframe,
            data,
            venue=venue,
            source=source,
            strict=strict,
            atomic=atomic,
            chunk_rows=chunk_rows,
            on_progress=on_progress,
        )
        for hook in self.after_ingest:
            await hook(result)
        return result

    async def get_historical_data(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime,
        end: datetime,
        limit: int | None = None,
        *,
        exact: bool = False,
        venue: str = DEFAULT_VENUE,
    ) -> CandleFrame:
        """Candles with start <= timestamp < end (half-open, like every range read of
        tradestore), oldest first; all of them unless `limit`.

        A timeframe with no candles of its own stored for the symbol is derived from the
        finest stored timeframe that divides it: from 1m through the rollups when they
        are fresh (see tradestore.marketdata.rollups; the same numbers as resampling), else by
        resampling. When something is stored but nothing can derive it, NotFound says so.
        """
        tf = Timeframe.parse(timeframe)
        if tf.is_calendar:  # derived only
            frame = CandleFrame.empty(symbol, tf, exact=exact)
        else:
            frame = await self.reader.historical(
                symbol, tf, start, end, limit=limit, exact=exact, venue=venue
            )
        if len(frame) or self.coarse_source is None:
            return frame
        stored = await self._stored_timeframes(venue, symbol)
        if tf in stored or not stored:
            return frame
        finer = [t for t in stored if t.divides(tf)]
        if not finer:
            have = ", ".join(t.value for t in sorted(stored, key=lambda t: t.seconds))
            raise NotFound(
                f"no {symbol} {tf.value} candles, and no finer timeframe that divides "
                f"{tf.value} to derive them from (stored: {have})"
            )
        source = min(finer, key=lambda t: t.seconds)
        if source is Timeframe.M1:
            coarse = self.coarse_source()
            derived, _ = await coarse.candles(symbol, tf, start, end, exact=exact, venue=venue)
        else:
            derived = await self.resample(
                symbol, tf, start, end, source=source, exact=exact, venue=venue
            )
        return derived if limit is None or len(derived) <= limit else _head(derived, limit)

    async def _stored_timeframes(self, venue: str, symbol: str) -> set[Timeframe]:
        rows = await self.db.query(
            "SELECT timeframe FROM market_data_catalog WHERE venue = %s AND symbol = %s",
            (venue, symbol),
        )
        return {Timeframe.parse(r["timeframe"]) for r in rows}

    async def get_latest_candles(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        n: int = 100,
        *,
        exact: bool = False,
        venue: str = DEFAULT_VENUE,
        fresh: bool = False,
    ) -> CandleFrame:
        """The n newest candles, oldest first; `fresh` reads the primary (what was just
        written), not a replica within the lag bound."""
        reader = self._primary_reader if fresh else self.reader
        return await reader.latest(symbol, timeframe, n, exact=exact, venue=venue)

    async def resample(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime,
        end: datetime,
        *,
        source: Timeframe | str = Timeframe.M1,
        exact: bool = False,
        venue: str = DEFAULT_VENUE,
    ) -> CandleFrame:
        """`timeframe` candles computed in SQL from stored `source` candles (see resample)."""
        return await resample(
            self.reader, symbol, timeframe, start, end, source=source, exact=exact, venue=venue
        )

    async def delete(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        venue: str = DEFAULT_VENUE,
    ) -> int:
        """Delete the series' candles in [since, until) (all by default); how many.
        The catalog, rollups and the Redis caches stay true (see marketdata.deletion)."""
        deleted = await delete_candles(self.db, symbol, timeframe, since, until, venue=venue)
        for hook in self.after_delete:
            await hook(venue, symbol, Timeframe.parse(timeframe))
        return deleted

    async def list_series(
        self, symbol: str | None = None, *, venue: str | None = None
    ) -> list[StoredSeries]:
        """What is stored: venue, symbol, timeframe, first, last, count (the catalog)."""
        rows = await self.db.query(SERIES_SQL, {"symbol": symbol, "venue": venue})
        return [StoredSeries(**row) for row in rows]


def _head(frame: CandleFrame, n: int) -> CandleFrame:
    cols = {name: values[:n] for name, values in frame.columns().items()}
    return CandleFrame(
        frame.symbol,
        frame.timeframe,
        cols.pop("timestamp"),
        cols.pop("open"),
        cols.pop("high"),
        cols.pop("low"),
        cols.pop("close"),
        cols.pop("volume"),
        cols.pop("trades_count", None),
        cols.pop("vwap", None),
        exact=frame.exact,
    )
