"""Ingests of closed history pack it into column blocks themselves (ingest_blocks.py):
what they store reads back, rolls up and counts exactly as the same candles stored as
rows, and nothing of a period is ever in two places (on TimescaleDB, where the rows
stay beside the blocks, a block is never out of step with them)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from tests.marketdata.helpers import candles, new_symbol, uneven_candles
from tradestore import TradeStore
from tradestore.marketdata.blocks import Compactor
from tradestore.marketdata.resample import resample

T0 = datetime(2024, 5, 6, tzinfo=UTC)
DAYS = 3
END = T0 + timedelta(days=DAYS)


async def read_all(store: TradeStore, symbol: str) -> dict[str, Any]:
    """What a user reads of the series, without its name."""
    md = store.market_data
    exact = await md.get_historical_data(symbol, "1m", T0, END, exact=True)
    hourly = await resample(md.reader, symbol, "1h", T0, END, exact=True)
    latest = await md.get_latest_candles(symbol, "1m", 500, exact=True)
    catalog = await store.db.query_one(
        "SELECT first_ts, last_ts, row_count FROM market_data_catalog WHERE symbol = %s",
        (symbol,),
    )
    return {
        "candles": [list(exact.columns()[c]) for c in exact.columns()] + [list(exact.timestamp)],
        "hourly": [list(hourly.timestamp), list(hourly.close), list(hourly.vwap)],
        "latest": list(latest.timestamp),
        "gaps": await md.quality.gaps(symbol, "1m", T0, END),
        "catalog": dict(catalog or {}),
        "sql": await store.db.query_value(
            "SELECT count(*) FROM market_data_all WHERE symbol = %s", (symbol,)
        ),
    }


async def rollups(store: TradeStore, symbol: str) -> list[list[Any]]:
    """The series' rollups."""
    out = []
    for tf in ("5m", "15m", "1h", "4h", "1d"):
        frame = await store.market_data.get_historical_data(symbol, tf, T0, END, exact=True)
        out += [list(frame.timestamp), *(list(v) for v in frame.columns().values())]
    return out


async def where(store: TradeStore, symbol: str) -> tuple[int, int]:
    """(candles in rows, candles in blocks) of the series."""
    rows = await store.db.query_value(
        "SELECT count(*) FROM market_data WHERE symbol = %s", (symbol,)
    )
    packed = await store.db.query_value(
        "SELECT coalesce(sum(row_count), 0) FROM market_data_block WHERE symbol = %s", (symbol,)
    )
    return int(rows), int(packed)


async def test_closed_history_is_packed_and_reads_as_rows_would(
    fresh_store: TradeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fresh_store
    data = uneven_candles(DAYS * 1440 - 100, T0)  # the last day is not full
    del data[2000:2030]  # a gap inside the second day
    as_rows, packed = new_symbol(), new_symbol()
    with monkeypatch.context() as m:
        m.setattr(Compactor, "ingest_horizon", lambda self, now=None: None)
        await store.market_data.store_candles(as_rows, "1m", data)
    result = await store.market_data.store_candles(packed, "1m", data)
    assert (result.inserted, result.updated, result.unchanged) == (len(data), 0, 0)
    assert result.packed == len(data)
    assert await where(store, packed) == (0, len(data))
    dirty = "SELECT count(*) FROM rollup_dirty WHERE symbol = %s"
    assert await store.db.query_value(dirty, (packed,)) == DAYS  # marked, as rows are
    await store.rollups.refresh()  # from the blocks of one, the rows of the other
    assert await store.db.query_value(dirty, (packed,)) == 0
    assert len((await rollups(store, packed))[0]) > 0
    assert await rollups(store, packed) == await rollups(store, as_rows)
    assert await read_all(store, packed) == await read_all(store, as_rows)
    # the same candles again: nothing changes, and the blocks stay as they are
    same = await store.market_data.store_candles(packed, "1m", data)
    assert (same.inserted, same.updated, same.unchanged) == (0, 0, len(data))
    assert await where(store, packed) == (0, len(data))
    # a correction moves its day back into rows, and is applied
    fixed = dict(data[100], close=data[100]["close"] + Decimal("0.5"))
    corrected = await store.market_data.store_candles(packed, "1m", [fixed])
    assert (corrected.inserted, corrected.updated) == (0, 1)
    assert await where(store, packed) == (1440, len(data) - 1440)
    frame = await store.market_data.get_historical_data(packed, "1m", T0, END, exact=True)
    assert frame.close[100] == fixed["close"] and len(frame) == len(data)
    # stored again: the corrected candle is put back, the other days stay packed
    again = await store.market_data.store_candles(packed, "1m", data)
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, len(data) - 1)
    assert await where(store, packed) == (1440, len(data) - 1440)


@pytest.mark.parametrize("atomic", [True, False])
async def test_chunks_splitting_a_period_leave_it_in_rows_once(
    fresh_store: TradeStore, atomic: bool
) -> None:
    store = fresh_store
    symbol = new_symbol()
    data = candles(DAYS * 1440, start=T0)
    result = await store.market_data.store_candles(
        symbol, "1m", data, chunk_rows=2000, atomic=atomic
    )
    assert result.inserted == len(data)
    # the first chunk packs day 0 and the start of day 1; the second finds that block,
    # moves it back into rows and adds the rest of day 1, and so on
    assert await where(store, symbol) == (2 * 1440, 1440)
    frame = await store.market_data.get_historical_data(symbol, "1m", T0, END, exact=True)
    assert list(frame.open) == [c["open"] for c in data]
    await store.rollups.refresh()
    daily = await store.market_data.get_historical_data(symbol, "1d", T0, END, exact=True)
    assert list(daily.volume) == [sum(c["volume"] for c in data[d * 1440 : (d + 1) * 1440])
                                  for d in range(DAYS)]  # fmt: skip
    await store.compactor.compact()  # the split days, packed now
    assert await where(store, symbol) == (0, len(data))
    again = await store.market_data.get_historical_data(symbol, "1m", T0, END, exact=True)
    assert list(again.close) == list(frame.close)


async def test_recent_candles_and_periods_holding_rows_stay_rows(fresh_store: TradeStore) -> None:
    store = fresh_store
    symbol = new_symbol()
    # a row in the second day (written while it was recent): an import that covers that
    # day stores it as rows, next to the row
    recent = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    old = candles(DAYS * 1440, start=T0)
    with_row = old[1440 + 7]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Compactor, "ingest_horizon", lambda self, now=None: None)
        await store.market_data.store_candles(symbol, "1m", [with_row])
    result = await store.market_data.store_candles(symbol, "1m", old + candles(60, start=recent))
    assert (result.inserted, result.unchanged) == (len(old) + 60 - 1, 1)
    assert await where(store, symbol) == (1440 + 60, 2 * 1440)
    catalog = await store.db.query_one(
        "SELECT row_count, compacted_until FROM market_data_catalog WHERE symbol = %s",
        (symbol,),
    )
    assert catalog == {"row_count": len(old) + 60, "compacted_until": END}
    await store.rollups.refresh()  # rows and blocks, one day each
    daily = await store.market_data.get_historical_data(symbol, "1d", T0, END, exact=True)
    assert list(daily.volume) == [sum(c["volume"] for c in old[d * 1440 : (d + 1) * 1440])
                                  for d in range(DAYS)]  # fmt: skip


async def test_no_packing_where_compaction_is_off(fresh_store: TradeStore) -> None:
    store = fresh_store
    store.compactor.compact_after = timedelta(0)  # TRADESTORE_COMPACT_AFTER_DAYS=0
    symbol = new_symbol()
    await store.market_data.store_candles(symbol, "1m", candles(1440, start=T0))
    assert await where(store, symbol) == (1440, 0)


async def test_reads_racing_packing_ingests_see_each_candle_once(fresh_store: TradeStore) -> None:
    """While a writer deletes a day, imports it again (packed at ingest) and corrects it
    (moved back into rows), over and over, every read sees the day whole or not at all,
    and every other candle once."""
    store = fresh_store
    symbol = new_symbol()
    data = uneven_candles(DAYS * 1440, T0)
    await store.market_data.store_candles(symbol, "1m", data)
    day = data[1440 : 2 * 1440]
    done = asyncio.Event()

    async def churn() -> None:
        for i in range(15):
            await store.market_data.delete(
                symbol, "1m", T0 + timedelta(days=1), T0 + timedelta(days=2)
            )
            assert (await store.market_data.store_candles(symbol, "1m", day)).inserted == 1440
            fixed = dict(day[i], volume=day[i]["volume"] + 1)
            await store.market_data.store_candles(symbol, "1m", [fixed])
        done.set()

    async def read() -> int:
        reads = 0
        while not done.is_set():
            frame = await store.market_data.get_historical_data(symbol, "1m", T0, END)
            stamps = frame.timestamp.astype(np.int64)
            assert len(stamps) in (len(data), len(data) - 1440)
            assert (np.diff(stamps) > 0).all()
            reads += 1
        return reads

    _, reads = await asyncio.gather(churn(), read())
    assert reads > 5
    assert len(await store.market_data.get_historical_data(symbol, "1m", T0, END)) == len(data)
