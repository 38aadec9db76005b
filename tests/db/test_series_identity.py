"""Series keyed by venue and market type (migration 0020), in both time-series modes:
an existing database keeps every candle (as dYdX's), and spot, perpetual and other
venues' data of one pair never collide."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import MODE, delete_keys, make_settings
from tests.marketdata.helpers import candles
from tradestore import TradeStore
from tradestore.db import migrator
from tradestore.timeframes import Timeframe

T0 = datetime(2024, 4, 1, tzinfo=UTC)
OLD_ROWS = """
INSERT INTO market_data (symbol, timeframe, timestamp, open, high, low, close, volume)
SELECT 'OLD-USD', '1m', t, 100, 101, 99, 100.5, 2
  FROM generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') t
"""


async def test_the_venue_migration_keeps_every_candle(
    empty_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = migrator.available_migrations()
    before_0020 = {k: v for k, v in shipped.items() if k < "0020"}
    monkeypatch.setattr(migrator, "available_migrations", lambda: before_0020)
    settings = make_settings(empty_database())
    last = T0 + timedelta(days=3) - timedelta(minutes=1)
    try:
        async with TradeStore(settings) as store:
            await store.migrate()
            await store.partitions.ensure("market_data", T0, last)
            await store.db.execute(OLD_ROWS, (T0, last))
            await store.db.execute("SELECT market_data_catalog_refresh('OLD-USD', '1m')")
            if MODE == "timescale":
                await store.db.execute(
                    "CALL refresh_continuous_aggregate('market_data_1d', %s, %s)",
                    (T0, T0 + timedelta(days=3)),
                )
                # retention dropped the first day's raw chunk; its aggregate is all that is left
                await store.db.execute(
                    "SELECT drop_chunks('market_data', older_than => %s)", (T0 + timedelta(days=1),)
                )
                await store.db.execute("SELECT market_data_catalog_refresh('OLD-USD', '1m')")
            monkeypatch.setattr(migrator, "available_migrations", lambda: shipped)
            applied = await store.migrate()
            assert [n for n in applied.applied if n.startswith("0020")] == ["0020_series_identity"]
            raw = 3 * 1440 if MODE != "timescale" else 2 * 1440
            assert (
                await store.db.query_value(
                    "SELECT count(*) FROM market_data WHERE venue = 'dydx' AND symbol = 'OLD-USD'"
                )
                == raw
            )
            (series,) = await store.market_data.list_series("OLD-USD")
            assert series.venue == "dydx" and series.row_count == raw
            frame = await store.market_data.get_historical_data(
                "OLD-USD", "1m", T0, T0 + timedelta(days=3)
            )
            assert len(frame) == raw
            await store.rollups.refresh()
            daily = await store.rollups.read(
                "OLD-USD", Timeframe.D1, T0, T0 + timedelta(days=3), exact=True
            )
            assert len(daily) == 3  # TimescaleDB: the dropped day from what 0020 kept
            assert list(daily.volume) == [Decimal(2 * 1440)] * 3
    finally:
        delete_keys(settings.redis_key_prefix)


async def test_spot_perpetual_and_venues_of_one_pair_are_separate_series(
    store: TradeStore,
) -> None:
    rows = candles(30, start=T0, base="100")
    perpetual = [dict(r, close=r["close"] + Decimal("0.1")) for r in rows]
    other_venue = [dict(r, close=r["close"] + Decimal("0.2")) for r in rows]
    md = store.market_data
    await md.store_candles("BTC/USDT", "1m", rows, venue="binance")
    await md.store_candles("BTC/USDT:USDT", "1m", perpetual, venue="binance")
    await md.store_candles("BTC/USDT", "1m", other_venue, venue="okx")
    end = T0 + timedelta(minutes=30)
    spot = await md.get_historical_data("BTC/USDT", "1m", T0, end, exact=True, venue="binance")
    perp = await md.get_historical_data("BTC/USDT:USDT", "1m", T0, end, exact=True, venue="binance")
    okx = await md.get_historical_data("BTC/USDT", "1m", T0, end, exact=True, venue="okx")
    assert list(spot.close) == [r["close"] for r in rows]
    assert list(perp.close) == [r["close"] for r in perpetual]
    assert list(okx.close) == [r["close"] for r in other_venue]
    listed = {(s.venue, s.symbol) for s in await md.list_series("BTC/USDT")}
    assert listed == {("binance", "BTC/USDT"), ("okx", "BTC/USDT")}
    hourly = await md.get_historical_data("BTC/USDT", "1h", T0, end, exact=True, venue="okx")
    assert hourly.close[0] == other_venue[-1]["close"]  # derived from okx's own 1m candles
    assert await md.delete("BTC/USDT", "1m", venue="okx") == 30
    assert len(await md.get_historical_data("BTC/USDT", "1m", T0, end, venue="binance")) == 30
    with pytest.raises(Exception, match="not a venue"):
        await md.store_candles("BTC/USDT", "1m", rows, venue="Bin ance")
