"""Backfill: fetch what a series is missing in [since, until) from a candle source.

Resumable by construction: what to fetch is computed from what is stored (before the
first candle, the gaps between stored candles, after the last), so a killed backfill run
again fetches only the rest. Each window is paged backwards from its end (sources answer
newest first), each page stored by the exact upsert path (a page that overlaps the
previous one, or a re-run, changes nothing). The still-open candle is never fetched: the
range ends at the start of the current bucket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from tradestore.errors import NotFound, ValidationError
from tradestore.marketdata.ingest import IngestResult
from tradestore.marketdata.repository import MarketDataRepository
from tradestore.timeframes import Timeframe
from tradestore.times import require_aware


class CandleSource(Protocol):
    name: str  # stored as data_source
    venue: str  # the exchange: part of the series' identity
    page_limit: int  # the most candles one answer holds

    async def candles(
        self, ticker: str, tf: Timeframe, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """The newest candles (a page) with start <= timestamp < end, oldest first."""
        ...


@dataclass
class BackfillProgress:
    symbol: str
    covered_s: float  # seconds of the missing windows done so far
    total_s: float
    candles: int
    pages: int


@dataclass
class BackfillResult:
    symbol: str
    timeframe: Timeframe
    windows: int = 0  # missing stretches found before fetching
    pages: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[str] = field(default_factory=list)  # "time: reason"
    gaps_left: int = 0  # runs of missing candles in the range afterwards


Window = tuple[datetime, datetime]
OnStored = Callable[[list[dict[str, Any]]], Awaitable[None]]


async def missing_windows(
    md: MarketDataRepository,
    venue: str,
    symbol: str,
    tf: Timeframe,
    since: datetime,
    until: datetime,
) -> list[Window]:
    """The stretches of [since, until) with no stored candle, oldest first."""
    try:
        first, after_last = await md.quality.stored_range(symbol, tf, venue=venue)
    except NotFound:
        return [(since, until)]
    windows: list[Window] = []
    if since < first:
        windows.append((since, min(first, until)))
    inner_start, inner_end = max(since, first), min(until, after_last)
    if inner_start < inner_end:
        for gap in await md.quality.gaps(symbol, tf, inner_start, inner_end, venue=venue):
            windows.append((gap.start, gap.end + tf.delta))
    if after_last < until:
        windows.append((max(after_last, since), until))
    return windows


async def backfill(
    md: MarketDataRepository,
    source: CandleSource,
    symbol: str,
    timeframe: Timeframe | str,
    since: datetime,
    until: datetime | None = None,
    *,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    on_stored: OnStored | None = None,
) -> BackfillResult:
    tf = Timeframe.parse_stored(timeframe)
    open_bucket = tf.bucket_start(datetime.now(UTC))
    until = min(until or open_bucket, open_bucket)
    require_aware("since", since)
    if until <= since:
        raise ValidationError("since must come before until", field="since", value=since)
    result = BackfillResult(symbol, tf)
    windows = await missing_windows(md, source.venue, symbol, tf, since, until)
    result.windows = len(windows)
    total_s = sum((end - start).total_seconds() for start, end in windows)
    progress = BackfillProgress(symbol, 0.0, total_s, 0, 0)

    async def store(page: list[dict[str, Any]]) -> None:
        stored = await md.store_candles(
            symbol, tf, as_columns(page), venue=source.venue, source=source.name
        )
        _add(result, stored, page)
        if on_stored is not None:
            await on_stored(page)

    for start, end in reversed(windows):  # newest first, as the sources page
        await _window(source, symbol, tf, start, end, store, result, progress, on_progress)
    result.gaps_left = len(await _gaps(md, source.venue, symbol, tf, since, until))
    return result


AHEAD = 8  # page requests in flight at once per window
BATCH_PAGES = 8  # pages already fetched stored together (one transaction, not eight)


async def _window(
    source: CandleSource,
    symbol: str,
    tf: Timeframe,
    start: datetime,
    end: datetime,
    store: Callable[[list[dict[str, Any]]], Coroutine[Any, Any, None]],
    result: BackfillResult,
    progress: BackfillProgress,
    on_progress: Callable[[BackfillProgress], None] | None,
) -> None:
    """Fetch one window backwards in slices of `source.page_limit` buckets: a slice can
    never hold more candles than one page, so its bounds are known before any answer
    and AHEAD of them are requested at once (the network is not waited on page by
    page). Pages are stored in order, newest first, the next page together with those
    after it that have already arrived (up to BATCH_PAGES): a stopped backfill has stored
    a contiguous newest stretch, which a resumed run does not fetch again. An empty slice
    ends the window (nothing older: before the market's first trade)."""
    slices = iter(_slices(start, end, tf, source.page_limit))
    pending: deque[tuple[datetime, datetime, asyncio.Task[list[dict[str, Any]]]]] = deque()

    def launch() -> None:
        bounds = next(slices, None)
        if bounds is not None:
            task = asyncio.create_task(source.candles(symbol, tf, *bounds))
            pending.append((*bounds, task))

    try:
        for _ in range(AHEAD):
            launch()
        while pending:
            await pending[0][2]
            batch: list[list[dict[str, Any]]] = []
            covered_s, ended = 0.0, False
            while pending and pending[0][2].done() and len(batch) < BATCH_PAGES:
                low, high, task = pending.popleft()
                launch()
                page = [c for c in task.result() if low <= c["timestamp"] < high]
                result.pages += 1
                if not page:
                    ended = True
                    break
                batch.append(page)
                covered_s += (high - low).total_seconds()
            if batch:
                # newest first across pages, oldest first within: store oldest first
                await store([c for page in reversed(batch) for c in page])
                progress.covered_s += covered_s
                progress.candles, progress.pages = result.fetched, result.pages
                if on_progress is not None:
                    on_progress(progress)
            if ended:
                break
    finally:
        for *_, task in pending:
            task.cancel()
        await asyncio.gather(*(task for *_, task in pending), return_exceptions=True)


def _slices(
    start: datetime, end: datetime, tf: Timeframe, buckets: int
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into spans of `buckets` candles, newest first."""
    out, high = [], end
    while high > start:
        low = max(start, high - buckets * tf.delta)
        out.append((low, high))
        high = low
    return out


DECIMAL = pa.decimal128(38, 8)


def as_columns(page: list[dict[str, Any]]) -> pa.Table | list[dict[str, Any]]:
    """A page as an Arrow table of exact decimals, cast from the sources' decimal text
    in bulk (the ingest's fast path, no Python object per value); the dicts themselves
    when a value does not fit 8 decimals, so the ingest reports that row."""
    try:
        columns: dict[str, Any] = {
            "timestamp": pa.array([c["timestamp"] for c in page], pa.timestamp("us", "UTC")),
            "trades_count": pa.array([c["trades_count"] for c in page], pa.int64()),
        }
        for name in ("open", "high", "low", "close", "volume", "vwap"):
            text = pa.array([_text(c[name]) for c in page], pa.string())
            columns[name] = pc.cast(text, DECIMAL)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return page
    return pa.table(columns)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _add(result: BackfillResult, stored: IngestResult, page: list[dict[str, Any]]) -> None:
    result.fetched += len(page)
    result.inserted += stored.inserted
    result.updated += stored.updated
    result.unchanged += stored.unchanged
    result.rejected += [
        f"{page[r.index]['timestamp']:%Y-%m-%d %H:%M}: {r.reason}" for r in stored.rejected
    ]


async def _gaps(
    md: MarketDataRepository,
    venue: str,
    symbol: str,
    tf: Timeframe,
    since: datetime,
    until: datetime,
) -> list[Any]:
    try:
        return await md.quality.gaps(symbol, tf, since, until, venue=venue)
    except NotFound:
        return []
