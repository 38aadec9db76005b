"""Ingest against real PostgreSQL: exactness, every bad row, inputs, races, partitions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from tests.conftest import open_stores
from tests.marketdata.helpers import candles, new_symbol
from tradestore import NotFound, TradeStore, ValidationError

T0 = datetime(2024, 1, 1, tzinfo=UTC)


async def test_round_trip_is_exact_to_8_decimals(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = candles(50)
    rows[3] |= {
        "open": Decimal("9999999999.99999999"),
        "high": Decimal("9999999999.99999999"),
        "low": Decimal("0.00000001"),
        "close": Decimal("1234567890.12345678"),
    }
    result = await store.market_data.store_candles(symbol, "1m", rows)
    assert (result.inserted, result.updated, result.unchanged, result.rejected) == (50, 0, 0, [])
    frame = await store.market_data.get_historical_data(
        symbol, "1m", T0, T0 + timedelta(hours=1), exact=True
    )
    assert len(frame) == 50
    for i, row in enumerate(rows):
        for name in ("open", "high", "low", "close", "volume"):
            assert frame.columns()[name][i] == row[name], (i, name)
    assert frame.trades_count is not None and list(frame.trades_count[:3]) == [0, 1, 2]
    stamps = frame.to_pandas().index
    assert stamps[0] == pd.Timestamp("2024-01-01T00:00:00Z") and str(stamps.tz) == "UTC"
    floats = await store.market_data.get_historical_data(symbol, "1m", T0, T0 + timedelta(hours=1))
    assert floats.close[0] == 100.37345678 and floats.close.dtype == np.float64


async def test_upsert_counts_inserted_updated_unchanged(store: TradeStore) -> None:
    symbol = new_symbol()
    await store.market_data.store_candles(symbol, "1m", candles(10))
    again = candles(12)
    again[0]["close"] += Decimal("0.00000001")  # a correction of one old candle
    result = await store.market_data.store_candles(symbol, "1m", again)
    assert (result.inserted, result.updated, result.unchanged) == (2, 1, 9)
    series = await store.market_data.list_series(symbol)
    assert series[0].row_count == 12 and series[0].first_ts == T0
    assert series[0].last_ts == T0 + timedelta(minutes=11)


BAD_ROWS = [
    ({"high": Decimal("90")}, "OHLC invariant broken"),
    ({"low": Decimal("200")}, "OHLC invariant broken"),
    ({"volume": Decimal("-1")}, "negative volume"),
    ({"open": float("nan")}, "open: NaN or infinite value"),
    ({"close": float("inf")}, "close: NaN or infinite value"),
    ({"timestamp": T0 + timedelta(seconds=30)}, "timestamp not on a 1m boundary"),
    ({"open": Decimal("100.123456789")}, "open: more than 8 decimal places"),
    ({"high": "12345678901"}, "high: too large for NUMERIC(18,8)"),
    ({"volume": "lots"}, "volume: not a number"),
    ({"timestamp": "yesterday"}, "timestamp: not a time"),
    ({"symbol": "ETH-USD"}, "symbol 'ETH-USD' is not"),
    ({"symbol": "eth usd"}, "bad symbol format"),
    ({"timeframe": "2m"}, "unknown timeframe '2m'"),
    ({"trades_count": -3}, "trades_count"),
    ({"timestamp": None}, "timestamp: missing"),
    ({"timestamp": float("nan")}, "timestamp: missing"),
    ({"timestamp": ""}, "timestamp: missing"),
    ({"timestamp": pd.NaT}, "timestamp: missing"),
    ({"timestamp": datetime(2200, 1, 1, tzinfo=UTC)}, "timestamp in the future"),
    ({"timestamp": datetime(1960, 1, 1, tzinfo=UTC)}, "timestamp before 1970-01-01"),
    ({"high": 1e10}, "high: too large for NUMERIC(18,8)"),  # the float boundary, exactly
    ({"volume": 1e10}, "volume: too large for NUMERIC(18,8)"),
    ({"volume": "x" * 10_000}, "volume: not a number ('xxxxxxxx"),
]


async def test_an_error_never_echoes_a_huge_value(store: TradeStore) -> None:
    rows = candles(3)
    rows[1]["volume"] = "x" * 10_000
    result = await store.market_data.store_candles(new_symbol(), "1m", rows)
    assert len(result.rejected[0].reason) < 120


@pytest.mark.parametrize("column", ["high", "volume", "vwap"])
async def test_a_float_column_at_the_boundary_is_one_rejected_row(
    store: TradeStore, column: str
) -> None:
    frame = pd.DataFrame(candles(3, base="100")).astype(
        {k: float for k in ("open", "high", "low", "close", "volume")}
    )
    frame["vwap"] = 100.0
    frame.loc[1, column] = 1e10
    if column != "volume":
        frame.loc[1, "high"] = 1e10
    result = await store.market_data.store_candles(new_symbol(), "1m", frame)
    assert result.inserted == 2
    assert [r.index for r in result.rejected] == [1]
    assert "too large for NUMERIC(18,8)" in result.rejected[0].reason


async def test_one_float_rule_for_dicts_and_frames(store: TradeStore) -> None:
    """Binary floats are rounded to 8 decimals (ties to even) in every input; text and
    Decimal are exact and must fit."""
    row = candles(1, base="0.1")[0] | {"open": 0.1 + 0.2, "low": 0.1, "high": 1.2}
    as_dict = await store.market_data.store_candles(symbol := new_symbol(), "1m", [row])
    as_frame = await store.market_data.store_candles(
        other := new_symbol(), "1m", pd.DataFrame([row]).astype({"open": float})
    )
    assert as_dict.rejected == as_frame.rejected == []
    for name in (symbol, other):
        frame = await store.market_data.get_latest_candles(name, "1m", 1, exact=True)
        assert frame.open[0] == Decimal("0.3")
    text = candles(1, base="0.1")[0] | {"volume": "10.12345678901"}
    result = await store.market_data.store_candles(new_symbol(), "1m", [text])
    assert "more than 8 decimal places" in result.rejected[0].reason


async def test_a_far_future_row_makes_no_partitions_and_loses_no_rows(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = candles(3, start=datetime(2023, 5, 1, tzinfo=UTC))
    rows[1]["timestamp"] = datetime(2200, 1, 1, tzinfo=UTC)
    partitions_before = await store.db.query_value(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'market_data'::regclass"
    )
    result = await store.market_data.store_candles(symbol, "1m", rows)
    assert result.inserted == 2 and [r.index for r in result.rejected] == [1]
    partitions_after = await store.db.query_value(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'market_data'::regclass"
    )
    assert partitions_after - partitions_before <= 1  # May 2023 only, if it was missing


@pytest.mark.native_only  # TimescaleDB makes its own chunks
async def test_partitions_only_for_months_that_have_rows(store: TradeStore) -> None:
    rows = candles(1, start=datetime(2011, 1, 1, tzinfo=UTC)) + candles(
        1, start=datetime(2013, 1, 1, tzinfo=UTC)
    )
    await store.market_data.store_candles(new_symbol(), "1m", rows)
    made = await store.db.query_value(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'market_data'::regclass AND c.relname BETWEEN "
        "'market_data_p20110101' AND 'market_data_p20130101'"
    )
    assert made == 2  # not the 23 empty months between


@pytest.mark.parametrize(("change", "reason"), BAD_ROWS)
async def test_every_kind_of_bad_row_is_reported(
    store: TradeStore, change: dict[str, object], reason: str
) -> None:
    symbol = new_symbol()
    rows = candles(5, base="100")
    rows[2] = rows[2] | change
    result = await store.market_data.store_candles(symbol, "1m", rows)
    assert result.inserted == 4
    assert len(result.rejected) == 1 and result.rejected[0].index == 2
    assert reason in result.rejected[0].reason


async def test_duplicates_in_input_keep_the_last(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = candles(3)
    rows.append(rows[1] | {"close": rows[1]["open"]})
    result = await store.market_data.store_candles(symbol, "1m", rows)
    assert result.inserted == 3 and [r.index for r in result.rejected] == [1]
    frame = await store.market_data.get_latest_candles(symbol, "1m", 10, exact=True)
    assert frame.close[1] == rows[1]["open"]


async def test_strict_mode_rejects_the_whole_batch(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = candles(300)
    rows[250]["volume"] = Decimal(-5)
    with pytest.raises(ValidationError, match="row 250: negative volume"):
        await store.market_data.store_candles(symbol, "1m", rows, strict=True, chunk_rows=100)
    assert await store.market_data.list_series(symbol) == []
    frame = await store.market_data.get_latest_candles(symbol, "1m", 10)
    assert len(frame) == 0


async def test_bad_call_arguments(store: TradeStore) -> None:
    with pytest.raises(ValidationError, match="unknown timeframe"):
        await store.market_data.store_candles("BTC-USD", "7m", candles(1))
    with pytest.raises(ValidationError, match="not a market symbol"):
        await store.market_data.store_candles("BTC-USD'; DROP TABLE market_data; --", "1m", [])
    with pytest.raises(ValidationError, match=r"missing column.*volume"):
        frame = pd.DataFrame(_columns(3)).drop(columns=["volume"])
        await store.market_data.store_candles("BTC-USD", "1m", frame)
    incomplete = await store.market_data.store_candles(new_symbol(), "1m", [{"open": 1}])
    assert incomplete.inserted == 0 and "timestamp" in incomplete.rejected[0].reason
    with pytest.raises(ValidationError, match="time zone"):
        await store.market_data.get_historical_data(
            "BTC-USD", "1m", datetime(2024, 1, 1), datetime(2024, 1, 2)
        )


def _columns(n: int) -> dict[str, object]:
    ts = pd.date_range("2024-02-01", periods=n, freq="1min", tz="UTC")
    price = np.round(np.linspace(100, 101, n), 8)
    return {
        "timestamp": ts,
        "open": price,
        "high": price + 1,
        "low": price - 1,
        "close": price,
        "volume": np.full(n, 2.5),
    }


@pytest.mark.parametrize(
    "kind", ["pandas", "pandas-index", "polars", "arrow", "arrow-decimal", "numpy", "iterable"]
)
async def test_every_input_type(store: TradeStore, kind: str) -> None:
    symbol = new_symbol()
    cols = _columns(240)
    frame = pd.DataFrame(cols)
    data: object
    if kind == "pandas":
        data = frame
    elif kind == "pandas-index":
        data = frame.set_index("timestamp")
    elif kind == "polars":
        data = pl.from_pandas(frame)
    elif kind == "arrow":
        data = pa.Table.from_pandas(frame)
    elif kind == "arrow-decimal":
        table = pa.Table.from_pandas(frame)
        data = table.set_column(1, "open", table.column("open").cast(pa.decimal128(18, 8)))
    elif kind == "numpy":
        dtype = [("timestamp", "datetime64[us]")] + [
            (c, "f8") for c in ("open", "high", "low", "close", "volume")
        ]
        data = np.zeros(240, dtype=dtype)
        data["timestamp"] = frame["timestamp"].dt.tz_localize(None).to_numpy("datetime64[us]")
        for c in ("open", "high", "low", "close", "volume"):
            data[c] = cols[c]
    else:
        data = (frame.iloc[i : i + 50] for i in range(0, 240, 50))
    result = await store.market_data.store_candles(symbol, "1m", data, chunk_rows=64)
    assert result.inserted == 240 and not result.rejected
    out = await store.market_data.get_latest_candles(symbol, "1m", 240)
    np.testing.assert_array_equal(out.open, cols["open"])


async def test_time_zones_in_any_zone_stored_in_utc(store: TradeStore) -> None:
    symbol = new_symbol()
    tokyo = timezone(timedelta(hours=9))
    rows = candles(3, start=datetime(2024, 3, 1, 9, 0, tzinfo=tokyo))  # = 00:00 UTC
    rows[1]["timestamp"] = "2024-03-01T00:01:00Z"
    rows[2]["timestamp"] = int(datetime(2024, 3, 1, 0, 2, tzinfo=UTC).timestamp() * 1000)
    result = await store.market_data.store_candles(symbol, "1m", rows)
    assert result.inserted == 3 and not result.rejected
    start = datetime(2024, 3, 1, tzinfo=UTC)
    frame = await store.market_data.get_historical_data(
        symbol, "1m", start, start + timedelta(minutes=3)
    )
    assert [str(t) for t in frame.timestamp] == [
        "2024-03-01T00:00:00.000000",
        "2024-03-01T00:01:00.000000",
        "2024-03-01T00:02:00.000000",
    ]


@pytest.mark.usefixtures("rows_only")  # of the row path
async def test_data_spread_over_many_partitions(store: TradeStore) -> None:
    symbol = new_symbol()
    start = datetime(2018, 11, 1, tzinfo=UTC)
    rows = candles(60, start=start, step_s=86_400 * 7)  # weekly candles over 14 months
    result = await store.market_data.store_candles(symbol, "1m", rows, chunk_rows=7)
    assert result.inserted == 60
    frame = await store.market_data.get_historical_data(
        symbol, "1m", start, start + timedelta(days=500)
    )
    assert len(frame) == 60
    parts = await store.db.query_value(
        "SELECT count(DISTINCT tableoid) FROM market_data WHERE symbol = %s", (symbol,)
    )
    assert parts >= 14


async def test_concurrent_overlapping_ingests(migrated_db_url: str) -> None:
    symbol = new_symbol()
    async with open_stores(migrated_db_url, 4) as stores:
        batches = [candles(3000, start=T0 + timedelta(minutes=500 * i)) for i in range(4)]
        results = await asyncio.gather(
            *(
                s.market_data.store_candles(symbol, "1m", b, chunk_rows=700, atomic=i % 2 == 0)
                for i, (s, b) in enumerate(zip(stores, batches, strict=True))
            )
        )
        total = await stores[0].db.query_value(
            "SELECT count(*) FROM market_data_all WHERE symbol = %s", (symbol,)
        )  # the closed days no chunk boundary split went straight into blocks
        assert total == 3000 + 500 * 3
        assert sum(r.inserted for r in results) == total
        series = await stores[0].market_data.list_series(symbol)
        assert series[0].row_count == total


@pytest.mark.usefixtures("rows_only")  # of the row path
async def test_closed_ranges_are_cached_and_a_correction_invalidates_them(
    store: TradeStore,
) -> None:
    from tests.conftest import raw_redis

    symbol = new_symbol()
    rows = candles(30)
    await store.market_data.store_candles(symbol, "1m", rows)
    end = T0 + timedelta(minutes=29)
    first = await store.market_data.get_historical_data(symbol, "1m", T0, end, exact=True)
    client = raw_redis()
    cached = list(client.scan_iter(match=f"{store.settings.redis_key_prefix}md-range*"))
    assert len(cached) == 1  # a range that ended long ago is cached
    again = await store.market_data.get_historical_data(symbol, "1m", T0, end, exact=True)
    assert list(again.close) == list(first.close)
    fixed = dict(rows[3], close=rows[3]["close"] + Decimal("0.5"))
    await store.market_data.store_candles(symbol, "1m", [fixed])
    after = await store.market_data.get_historical_data(symbol, "1m", T0, end, exact=True)
    assert after.close[3] == fixed["close"]  # the new catalog version misses the old entry
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    open_symbol = new_symbol()
    await store.market_data.store_candles(open_symbol, "1m", candles(3, start=now))
    await store.market_data.get_historical_data(open_symbol, "1m", now, now + timedelta(hours=1))
    assert not list(
        client.scan_iter(match=f"{store.settings.redis_key_prefix}md-range:{open_symbol}*")
    )  # reaches the open candle: never cached
    client.close()


async def test_append_path_falls_back_when_a_row_exists_outside_the_catalog(
    store: TradeStore,
) -> None:
    symbol = new_symbol()
    rows = candles(10)
    await store.market_data.store_candles(symbol, "1m", rows[:5])  # catalog: up to row 4
    # written behind tradestore's back, after the catalog's last candle
    await store.db.execute(
        "INSERT INTO market_data (symbol, timeframe, timestamp, open, high, low, close, volume)"
        " VALUES (%s, '1m', %s, 1, 1, 1, 1, 1)",
        (symbol, rows[7]["timestamp"]),
    )
    result = await store.market_data.store_candles(symbol, "1m", rows[5:])
    assert (result.inserted, result.updated, result.unchanged) == (4, 1, 0)
    frame = await store.market_data.get_latest_candles(symbol, "1m", 10, exact=True)
    assert len(frame) == 10 and frame.close[7] == rows[7]["close"]


@pytest.mark.usefixtures("rows_only")  # of the row path
async def test_catalog_versions_never_repeat_so_a_cached_range_cannot_come_back(
    store: TradeStore,
) -> None:
    symbol = new_symbol()
    rows = candles(30)
    end = T0 + timedelta(minutes=30)
    await store.market_data.store_candles(symbol, "1m", rows)
    first = await store.market_data.get_historical_data(symbol, "1m", T0, end, exact=True)
    versions = {
        await store.db.query_value(
            "SELECT version FROM market_data_catalog WHERE symbol = %s", (symbol,)
        )
    }
    # the series emptied and recounted: its catalog row goes away ...
    await store.db.execute("DELETE FROM market_data WHERE symbol = %s", (symbol,))
    await store.db.execute("SELECT market_data_catalog_refresh('dydx', %s, '1m')", (symbol,))
    assert await store.market_data.list_series(symbol) == []
    # ... and comes back with different data: the old cached range must not be served
    changed = candles(30, base="200.5")
    await store.market_data.store_candles(symbol, "1m", changed)
    version = await store.db.query_value(
        "SELECT version FROM market_data_catalog WHERE symbol = %s", (symbol,)
    )
    assert version not in versions
    again = await store.market_data.get_historical_data(symbol, "1m", T0, end, exact=True)
    assert list(again.close) == [r["close"] for r in changed] != list(first.close)
    await store.db.execute("SELECT market_data_catalog_refresh('dydx', %s, '1m')", (symbol,))
    assert (
        await store.db.query_value(
            "SELECT version FROM market_data_catalog WHERE symbol = %s", (symbol,)
        )
        > version
    )  # a recount of a live series bumps it too


async def test_delete_keeps_catalog_range_cache_and_latest_candle_true(store: TradeStore) -> None:
    symbol = new_symbol()
    rows = candles(60)
    await store.market_data.store_candles(symbol, "1m", rows)
    end = T0 + timedelta(hours=1)
    cached = await store.market_data.get_historical_data(symbol, "1m", T0, end)
    assert len(cached) == 60  # and now cached in Redis under the catalog version
    deleted = await store.market_data.delete(symbol, "1m", T0 + timedelta(minutes=50))
    assert deleted == 10
    assert len(await store.market_data.get_historical_data(symbol, "1m", T0, end)) == 50
    (series,) = await store.market_data.list_series(symbol)
    assert series.row_count == 50 and series.last_ts == T0 + timedelta(minutes=49)
    latest = await store.latest.get_candle(symbol, "1m")
    assert latest is not None and latest["timestamp"] == T0 + timedelta(minutes=49)
    assert await store.market_data.delete(symbol, "1m") == 50
    assert await store.market_data.list_series(symbol) == []
    assert await store.latest.get_candle(symbol, "1m") is None
    with pytest.raises(NotFound):
        await store.market_data.delete(symbol, "1m")
