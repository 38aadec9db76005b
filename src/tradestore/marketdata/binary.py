"""PostgreSQL binary COPY for candles, with fixed-width rows, built and parsed by numpy.

Every NUMERIC(18,8) value is an integer number of 1e-8 units below 10^18, so it fits an
int64 exactly. Candles therefore travel as int8 columns (value * 1e8): writing, numpy
packs rows into one buffer; reading, the server casts to int8 and numpy views the stream
as a structured array. No Python object per row either way, and nothing is rounded.

Row layout (all big-endian): int16 field count, then per field int32 length + value.
Unknown trades_count is -1 and unknown vwap is INT64_MIN, so every row has one width.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
SCALE = 100_000_000  # 1e8: NUMERIC(18,8) as int64
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NO_TRADES = -1
NO_VWAP = np.iinfo(np.int64).min

# (name, numpy type) of the staged columns, in COPY order.
STAGE_COLUMNS: list[tuple[str, str]] = [
    ("ts", ">i8"),  # timestamptz: microseconds since 2000-01-01 UTC
    ("open", ">i8"),
    ("high", ">i8"),
    ("low", ">i8"),
    ("close", ">i8"),
    ("volume", ">i8"),
    ("trades_count", ">i4"),
    ("vwap", ">i8"),
    ("quality", ">i2"),
]

# The same columns as read back by read_sql(): ts, prices, trades_count, vwap.
READ_COLUMNS: list[tuple[str, str]] = STAGE_COLUMNS[:-1]


def header_length(data: bytes | bytearray | memoryview) -> int | None:
    """The length of the binary COPY header that data starts with, or None while data
    holds only part of it; ValueError when data does not start like a binary COPY."""
    if len(data) >= len(SIGNATURE) and bytes(data[: len(SIGNATURE)]) != SIGNATURE:
        raise ValueError("not a PostgreSQL binary COPY stream")
    if len(data) < len(HEADER):
        return None
    length = len(HEADER) + int.from_bytes(data[15:19], "big")  # plus its extension area
    return length if len(data) >= length else None


def row_dtype(columns: list[tuple[str, str]]) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    for name, kind in columns:
        fields += [(f"{name}_len", ">i4"), (name, kind)]
    return np.dtype(fields)


STAGE_DTYPE = row_dtype(STAGE_COLUMNS)
READ_DTYPE = row_dtype(READ_COLUMNS)


def encode_rows(columns: dict[str, npt.NDArray[Any]], n: int) -> bytes:
    """Rows of STAGE_COLUMNS as binary COPY data (without header and trailer)."""
    rows = np.empty(n, dtype=STAGE_DTYPE)
    rows["nfields"] = len(STAGE_COLUMNS)
    for name, kind in STAGE_COLUMNS:
        rows[f"{name}_len"] = np.dtype(kind).itemsize
        rows[name] = columns[name]
    return rows.tobytes()


def unix_us_to_pg(ts_us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return ts_us - PG_EPOCH_US


def pg_to_datetime64(ts_pg: npt.NDArray[Any]) -> npt.NDArray[np.datetime64]:
    return (ts_pg.astype(np.int64) + PG_EPOCH_US).astype("datetime64[us]")


def scaled_to_float(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Exactly the nearest float64 of each decimal (the int64 is exact below 2^53)."""
    return values.astype(np.int64) / SCALE


def scaled_to_decimal(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    from decimal import Decimal

    out = np.empty(len(values), dtype=object)
    out[:] = [Decimal(int(v)).scaleb(-8) for v in values]
    return out


def from_unix_us(us: int) -> datetime:
    """A Unix time in microseconds as an aware UTC datetime."""
    return UNIX_EPOCH + timedelta(microseconds=us)


def unix_us(ts: datetime) -> int:
    """An aware datetime as Unix microseconds."""
    return (ts - UNIX_EPOCH) // timedelta(microseconds=1)
