"""Every file layout, detected from content and imported exactly."""

from __future__ import annotations

import gzip
import hashlib
import json
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from tests.marketdata.helpers import new_symbol
from tradestore import TradeStore, ValidationError
from tradestore.marketdata.importers import FileFormat, detect, open_source
from tradestore.marketdata.importers.detect import suggest_series

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)
PRICES = [("42000.01000000", "42100.5", "41900.12345678", "42050.00000001", "12.5")] * 3


def binance_lines(unit: int = 1000) -> list[str]:
    lines = []
    for i, (o, h, lo, c, v) in enumerate(PRICES):
        t = (MS + i * 60_000) * unit // 1000
        lines.append(f"{t},{o},{h},{lo},{c},{v},{t + 59_999},525000.25,{7 + i},1,1,0")
    return lines


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def import_path(store: TradeStore, path: Path, tf: str = "1m") -> tuple[str, object]:
    symbol = new_symbol()
    _, tables = open_source(path)
    result = await store.market_data.store_candles(symbol, tf, tables, atomic=False)
    return symbol, result


async def assert_exact(store: TradeStore, symbol: str) -> None:
    frame = await store.market_data.get_historical_data(
        symbol, "1m", T0, T0 + timedelta(minutes=3), exact=True
    )
    assert len(frame) == 3
    assert frame.open[0] == Decimal("42000.01") and frame.low[0] == Decimal("41900.12345678")
    assert frame.close[2] == Decimal("42050.00000001")


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("unit", [1000, 1_000_000])  # ms, and µs (spot from 2025)
async def test_binance_csv(store: TradeStore, tmp_path: Path, header: bool, unit: int) -> None:
    head = (
        (
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
            "taker_buy_volume,taker_buy_quote_volume,ignore\n"
        )
        if header
        else ""
    )
    path = write(tmp_path / "BTCUSDT-1m-2024-01.csv", head + "\n".join(binance_lines(unit)))
    assert detect(path) is FileFormat.BINANCE_CSV
    symbol, result = await import_path(store, path)
    assert result.inserted == 3 and not result.rejected  # type: ignore[attr-defined]
    await assert_exact(store, symbol)
    frame = await store.market_data.get_latest_candles(symbol, "1m", 3)
    assert frame.trades_count is not None and list(frame.trades_count) == [7, 8, 9]


async def test_binance_zip_with_checksum(store: TradeStore, tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1m-2024-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-1m-2024-01.csv", "\n".join(binance_lines()))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    write(tmp_path / "BTCUSDT-1m-2024-01.zip.CHECKSUM", f"{digest}  {path.name}\n")
    source, tables = open_source(path)
    assert source.format is FileFormat.BINANCE_ZIP and source.symbol == "BTCUSDT"
    symbol = new_symbol()
    result = await store.market_data.store_candles(symbol, "1m", tables)
    assert result.inserted == 3 and "sha256 verified" in source.notes[0]
    write(tmp_path / "BTCUSDT-1m-2024-01.zip.CHECKSUM", f"{'0' * 64}  {path.name}\n")
    with pytest.raises(ValidationError, match="sha256 does not match"):
        _, tables = open_source(path)
        list(tables)


async def test_plain_csv_with_iso_times_and_a_bad_row(store: TradeStore, tmp_path: Path) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    for i, (o, h, lo, c, v) in enumerate(PRICES):
        rows.append(f"{(T0 + timedelta(minutes=i)).isoformat()},{o},{h},{lo},{c},{v}")
    rows.append(f"{(T0 + timedelta(minutes=3)).isoformat()},1,2,3,abc,1")
    path = write(tmp_path / "candles.csv", "\n".join(rows))
    assert detect(path) is FileFormat.PLAIN_CSV
    symbol, result = await import_path(store, path)
    assert result.inserted == 3  # type: ignore[attr-defined]
    rejected = result.rejected  # type: ignore[attr-defined]
    assert [(r.index, r.reason) for r in rejected] == [(3, "close: not a number ('abc')")]
    await assert_exact(store, symbol)


def ccxt_list() -> list[list[float]]:
    return [
        [MS + i * 60_000, float(o), float(h), float(lo), float(c), float(v)]
        for i, (o, h, lo, c, v) in enumerate(PRICES)
    ]


async def test_ccxt_json_and_freqtrade_jsongz(store: TradeStore, tmp_path: Path) -> None:
    plain = write(tmp_path / "ccxt.json", json.dumps(ccxt_list()))
    packed = tmp_path / "BTC_USDT-1m.json.gz"
    packed.write_bytes(gzip.compress(json.dumps(ccxt_list()).encode()))
    assert detect(plain) is FileFormat.JSON_LIST and detect(packed) is FileFormat.JSON_GZ
    for path in (plain, packed):
        symbol, result = await import_path(store, path)
        assert result.inserted == 3  # type: ignore[attr-defined]
        await assert_exact(store, symbol)


def freqtrade_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.date_range(T0, periods=3, freq="1min", tz="UTC"),
            "open": [42000.01] * 3,
            "high": [42100.5] * 3,
            "low": [41900.12345678] * 3,
            "close": [42050.00000001] * 3,
            "volume": [12.5] * 3,
        }
    )


async def test_freqtrade_feather_and_parquet(store: TradeStore, tmp_path: Path) -> None:
    frame = freqtrade_frame()
    fpath = tmp_path / "BTC_USDT-1m.feather"
    feather.write_feather(frame, fpath, compression="lz4")
    ppath = tmp_path / "BTC_USDT_USDT-1m-futures.parquet"
    pq.write_table(pa.Table.from_pandas(frame), ppath)
    assert detect(fpath) is FileFormat.FEATHER and detect(ppath) is FileFormat.PARQUET
    assert suggest_series(fpath) == ("BTC/USDT", "1m")
    assert suggest_series(ppath) == ("BTC/USDT:USDT", "1m")  # the perpetual, not spot
    for path in (fpath, ppath):
        symbol, result = await import_path(store, path)
        assert result.inserted == 3  # type: ignore[attr-defined]
        await assert_exact(store, symbol)


def test_unknown_layouts_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unrecognised layout"):
        detect(write(tmp_path / "x.csv", "a,b,c\n1,2,3\n"))
    with pytest.raises(ValidationError, match="empty"):
        detect(write(tmp_path / "e.csv", "\n"))
    with pytest.raises(ValidationError, match="no such file"):
        open_source(tmp_path / "missing.csv")


def test_cli_import_shows_a_summary(tmp_path: Path, migrated_db_url: str) -> None:
    import os
    import subprocess
    import sys

    lines = binance_lines()
    lines.append(lines[-1].replace("42050.00000001", "50000", 1))  # same time, close > high
    path = write(tmp_path / "ETHUSDT-1m-2024-01.csv", "\n".join(lines))
    env = dict(os.environ, DATABASE_URL=migrated_db_url, REDIS_URL="")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradestore",
            "market",
            "import",
            str(path),
            "--symbol",
            new_symbol(),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "binance-csv layout" in out and "stored (new) │ 3" in out
    # the bad later row does not displace the good earlier one with the same time
    assert "rejected │ 1" in out and "1 × OHLC invariant broken" in out and "(line 4)" in out
    assert "duplicate" not in out
