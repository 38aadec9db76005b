"""`tradestore market import/export` on the files users have, and on broken ones: a
clear one-line error for each broken file, and export -> import as an identity."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.e2e.test_cli import Cli, cli, migrated  # noqa: F401 (fixtures)

HEADER = "timestamp,open,high,low,close,volume\n"
ROW = "2024-01-01T00:{:02d}:00Z,1,2,0.5,1.5,10\n"


def _minutes(n: int) -> str:
    return HEADER + "".join(ROW.format(i) for i in range(n))


def _write_broken(folder: Path) -> dict[str, str]:
    """file name -> what its error must say."""
    (folder / "header-only.csv").write_text(HEADER.strip())
    (folder / "garbage.zip").write_bytes(b"PK\x03\x04" + b"garbage" * 20)
    with zipfile.ZipFile(folder / "empty-member.zip", "w") as z:
        z.writestr("BTCUSDT-1m-2024-01.csv", "")
    (folder / "bad.json").write_text("[[1704067200000, 1, 2")
    (folder / "env.txt").write_text("SECRET_TOKEN=abc\n")
    return {
        "header-only.csv": "a header and no candles",
        "garbage.zip": "not a readable zip archive",
        "empty-member.zip": "inside the zip is empty",
        "bad.json": "not valid JSON",
        "env.txt": "unrecognised layout",
    }


def test_each_broken_file_is_one_clear_error(migrated: Cli) -> None:  # noqa: F811
    for name, says in _write_broken(migrated.workdir).items():
        result = migrated("market", "import", name, "--symbol", "BAD-USD", "--timeframe", "1m")
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and says in errors[0], (name, result.stderr)
        assert "unexpected" not in result.stderr and "abc" not in result.stderr, name


def test_the_layouts_users_have(migrated: Cli) -> None:  # noqa: F811
    folder = migrated.workdir
    with gzip.open(folder / "gz.csv.gz", "wt") as f:
        f.write(_minutes(5))
    out = migrated.ok("market", "import", "gz.csv.gz", "--symbol", "GZ-USD")
    assert "timeframe 1m, from the spacing" in out and "stored (new) │ 5" in out
    pandas_layout = ",Open,High,Low,Close,Volume,Dividends\n" + "".join(
        f"2024-01-0{d} 00:00:00,1,2,0.5,1.5,10,0\n" for d in range(1, 6)
    )
    (folder / "pandas.csv").write_text(pandas_layout)
    out = migrated.ok("market", "import", "pandas.csv", "--symbol", "PD-USD")
    assert "timeframe 1d" in out and "stored (new) │ 5" in out
    assert "ignored column(s) that are not candle data: dividends" in out
    (folder / "one-minute.csv").write_text(_minutes(30))
    wrong = migrated(
        "market", "import", "one-minute.csv", "--symbol", "TF-USD", "--timeframe", "5m"
    )
    assert wrong.returncode == 1 and "1m apart, not 5m" in wrong.stderr
    (folder / "two-symbols.csv").write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,BTC-USD,1,2,0.5,1.5,10\n"
        "2024-01-01T00:01:00Z,ETH-USD,1,2,0.5,1.5,10\n"
    )
    out = migrated.ok(
        "market", "import", "two-symbols.csv", "--symbol", "BTC-USD", "--timeframe", "1m"
    )
    assert "symbol 'ETH-USD' is not 'BTC-USD'" in out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_then_import_is_an_identity(migrated: Cli, suffix: str) -> None:  # noqa: F811
    folder = migrated.workdir
    rows = (
        HEADER.strip()
        + ",trades_count\n"
        + "".join(
            f"2024-02-01T00:{i:02d}:00Z,1.5,2.12345678,0.5,1.5,10,{'' if i % 2 else i}\n"
            for i in range(20)
        )
    )
    (folder / "known-and-unknown.csv").write_text(rows)
    series = f"RT{suffix[1:4].upper()}"
    migrated.ok(
        "market", "import", "known-and-unknown.csv", "--symbol", f"{series}-A", "--timeframe", "1m"
    )
    migrated.ok("market", "export", f"{series}-A", "1m", "--out", f"first{suffix}")
    out = migrated.ok(
        "market", "import", f"first{suffix}", "--symbol", f"{series}-B", "--timeframe", "1m"
    )
    assert "rejected     │ 0" in out
    migrated.ok("market", "export", f"{series}-B", "1m", "--out", f"second{suffix}")
    if suffix == ".csv":
        first = (folder / "first.csv").read_text()
        assert first == (folder / "second.csv").read_text()
        assert ",,\n" in first  # an unknown trade count (and vwap) is empty, not -1
    else:
        first_table = pq.read_table(folder / "first.parquet")
        assert first_table.equals(pq.read_table(folder / "second.parquet"))
        assert first_table.column("trades_count").null_count == 10


def test_several_files_one_summary_and_a_failed_file_is_named(migrated: Cli) -> None:  # noqa: F811
    folder = migrated.workdir / "many"
    folder.mkdir()
    for day in (1, 2, 3):
        (folder / f"part{day}.csv").write_text(
            HEADER + "".join(f"2024-03-0{day}T00:{i:02d}:00Z,1,2,0.5,1.5,10\n" for i in range(10))
        )
    (folder / "broken.zip").write_bytes(b"PK\x03\x04 nothing")
    result = migrated("market", "import", "many", "--symbol", "MANY-USD", "--timeframe", "1m")
    assert result.returncode == 1  # one file failed: said, and the rest imported
    assert "3 file(s) imported, 1 failed, 30 candles stored" in result.stdout
    assert "broken.zip: not imported" in result.stdout
    again = migrated.ok("market", "import", "many/part*.csv", "--symbol", "MANY-USD")
    assert "3 file(s) imported, 0 failed, 30 candles stored" in again


def test_export_to_stdout_resampled_and_delete_keeps_the_catalog_true(migrated: Cli) -> None:  # noqa: F811
    (migrated.workdir / "hour.csv").write_text(_minutes(60))
    migrated.ok("market", "import", "hour.csv", "--symbol", "STD-USD", "--timeframe", "1m")
    out = migrated.ok("market", "export", "STD-USD", "1m", "--out", "-", "--timeframe", "15m")
    lines = out.strip().splitlines()
    assert lines[0].startswith('"timestamp"') and len(lines) == 5  # header + 4 candles
    assert lines[1].split(",")[5] == "150.00000000"  # 15 minutes of volume 10
    deleted = migrated.ok(
        "market", "delete", "STD-USD", "1m", "--since", "2024-01-01T00:30", "--yes"
    )
    assert "deleted 30 STD-USD 1m candles" in deleted
    listed = migrated.ok("market", "list", "--symbol", "STD-USD")
    assert "2024-01-01 00:29:00" in listed and "│ 30 " in listed
    migrated.ok("market", "delete", "STD-USD", "1m", "--yes")
    assert "STD-USD" not in migrated.ok("market", "list", "--symbol", "STD-USD")
    gone = migrated("market", "gaps", "STD-USD", "1m")
    assert gone.returncode == 1 and "no STD-USD 1m candles of dydx are stored" in gone.stderr
