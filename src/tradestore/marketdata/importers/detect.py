"""Which layout a market-data file has, from its content (names only suggest the series).

Layouts (facts from ../shared/formats.md):
- Binance kline CSV (.csv, or the .zip it ships in): 12 columns, no header in spot files,
  a header from about 2022-05 in futures files; times in ms, or µs (spot from 2025).
- freqtrade OHLCV: feather (Arrow IPC, lz4), parquet, json / json.gz (a list of
  [ms, open, high, low, close, volume]); names `<PAIR>-<timeframe>[-futures].<ext>`.
- CCXT fetch_ohlcv saved as JSON: the same list shape as freqtrade json.
- plain CSV with a header naming timestamp (or date/time), open, high, low, close, volume.
- any Parquet file with those columns.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from tradestore.errors import ValidationError

# CSV block size. Small on purpose: Arrow's allocator keeps freed blocks for reuse, and
# with 8 MB blocks a 256 MB import peaked at 540 MB RSS; with 1 MB it stays ~150 MB.
BATCH_BYTES = 1 << 20
BATCH_ROWS = 100_000
BINANCE_COLUMNS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
]
FREQTRADE_NAME = re.compile(
    r"^(?P<pair>.+?)-(?P<tf>\d+(?:m|h|d|w|Mo))(?:-(?P<kind>futures|mark|index|funding_rate))?$"
)
BINANCE_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<tf>\d+[smhdwM])-\d{4}-\d{2}(?:-\d{2})?$")


class FileFormat(StrEnum):
    BINANCE_CSV = "binance-csv"
    BINANCE_ZIP = "binance-zip"
    PLAIN_CSV = "csv"
    CSV_GZ = "csv.gz"
    FEATHER = "feather"
    PARQUET = "parquet"
    JSON_LIST = "json"  # freqtrade json or CCXT fetch_ohlcv
    JSON_GZ = "jsongz"


@dataclass
class Source:
    """An opened file: its layout, suggested series and a stream of Arrow tables."""

    path: Path
    format: FileFormat
    size: int
    symbol: str | None = None  # suggested by the file name
    timeframe: str | None = None
    header_lines: int = 0  # lines before the first candle (for row numbers)
    notes: list[str] = field(default_factory=list)
    _position: Any = None  # callable giving bytes consumed so far

    def bytes_read(self) -> int:
        return int(self._position()) if self._position else 0


def detect(path: Path) -> FileFormat:
    head = _head(path, 4096)
    if head.startswith(b"PAR1"):
        return FileFormat.PARQUET
    if head.startswith(b"ARROW1"):
        return FileFormat.FEATHER
    if head.startswith(b"\x1f\x8b"):
        return _inside_gzip(path)
    if head.startswith(b"PK\x03\x04"):
        return FileFormat.BINANCE_ZIP
    text = head.lstrip()
    if text.startswith(b"["):
        return FileFormat.JSON_LIST
    first = text.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lower()
    if not first:
        raise ValidationError(f"{path}: the file is empty", field="path", value=str(path))
    if first[0].isdigit() and first.count(",") == 11:
        return FileFormat.BINANCE_CSV
    if first.replace(" ", "").startswith("open_time,open,high,low,close,volume,close_time"):
        return FileFormat.BINANCE_CSV
    names = {c.strip().strip('"') for c in first.split(",")}
    if {"open", "high", "low", "close", "volume"} <= names:
        return FileFormat.PLAIN_CSV
    raise ValidationError(
        f"{path}: unrecognised layout ({_describe_header(first)}); expected a Binance kline "
        "CSV, a CSV with timestamp/open/high/low/close/volume columns, freqtrade feather/"
        "parquet/json, or a CCXT fetch_ohlcv JSON list",
        field="path",
        value=str(path),
    )


def _inside_gzip(path: Path) -> FileFormat:
    """freqtrade's .json.gz, or a gzipped CSV with a header (`.csv.gz`)."""
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError) as exc:
        raise ValidationError(
            f"{path}: not a readable gzip file ({exc})", field="path", value=str(path)
        ) from None
    if head.lstrip().startswith(b"["):
        return FileFormat.JSON_GZ
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lower()
    if {"open", "high", "low", "close", "volume"} <= {
        c.strip().strip('"') for c in first.split(",")
    }:
        return FileFormat.CSV_GZ
    raise ValidationError(
        f"{path}: a gzip file holding neither a JSON candle list nor a CSV with a header "
        f"({_describe_header(first)})",
        field="path",
        value=str(path),
    )


_HEADER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .()-]{0,30}$")


def _describe_header(first: str) -> str:
    """The first line's column names when it is a header of plain names; nothing of the
    content otherwise (a file given by mistake may hold secrets, e.g. an environment)."""
    names = [c.strip().strip('"') for c in first.split(",")]
    if len(names) > 1 and all(_HEADER_NAME.match(n) for n in names):
        return "columns: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"the first line is not a header of column names ({len(first)} characters)"


def suggest_series(path: Path) -> tuple[str | None, str | None]:
    """(symbol, timeframe) from freqtrade or Binance file names, if they follow them; a
    freqtrade futures file names its perpetual in CCXT's form (BTC/USDT:USDT), so it is
    never the spot series BTC/USDT."""
    stem = path.name.split(".")[0]
    if match := BINANCE_NAME.match(stem):
        return match["symbol"], match["tf"]
    if match := FREQTRADE_NAME.match(stem):
        pair = match["pair"]
        parts = pair.split("_")
        symbol = f"{parts[0]}/{parts[1]}" if len(parts) >= 2 else pair
        if match["kind"] == "futures" and len(parts) >= 3:  # BTC_USDT_USDT: a perpetual
            symbol += f":{parts[2]}"
        tf = match["tf"].replace("Mo", "M")
        return symbol.upper(), tf
    return None, None


def verify_binance_checksum(path: Path) -> str | None:
    """Check `<file>.CHECKSUM` (sha256) when it sits beside the file; a note, or None."""
    checksum_file = path.with_name(path.name + ".CHECKSUM")
    if not checksum_file.exists():
        return None
    expected = checksum_file.read_text().split()[0].lower()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ValidationError(
            f"{path}: sha256 does not match {checksum_file.name}", field="path", value=str(path)
        )
    return f"sha256 verified against {checksum_file.name}"


def _head(path: Path, n: int) -> bytes:
    with path.open("rb") as f:
        return f.read(n)


class _ZipMember(io.BufferedReader):
    """The member's stream, closing the zip file (and its OS file) with it."""

    def __init__(self, member: IO[bytes], archive: zipfile.ZipFile, raw: IO[bytes]) -> None:
        super().__init__(member)  # type: ignore[arg-type]
        self._owned = (archive, raw)

    def close(self) -> None:
        super().close()
        for owned in self._owned:
            owned.close()


def open_text_member(path: Path) -> tuple[IO[bytes], Any]:
    """The CSV inside a Binance zip, and a callable of compressed bytes read so far."""
    raw = path.open("rb")
    archive = zipfile.ZipFile(raw)
    members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
    if len(members) != 1:
        raise ValidationError(
            f"{path}: expected one CSV inside the zip, found {members}",
            field="path",
            value=str(path),
        )
    if archive.getinfo(members[0]).file_size == 0:
        raise ValidationError(
            f"{path}: {members[0]} inside the zip is empty", field="path", value=str(path)
        )
    return _ZipMember(archive.open(members[0]), archive, raw), raw.tell


class _GzipFile(gzip.GzipFile):
    """A GzipFile that closes the OS file it reads."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(fileobj=raw)
        self._raw = raw

    def close(self) -> None:
        super().close()
        self._raw.close()


def gzip_stream(path: Path) -> tuple[gzip.GzipFile, Any]:
    raw = path.open("rb")
    return _GzipFile(raw), raw.tell
