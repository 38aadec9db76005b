"""Decode a binary COPY stream of candles chunk by chunk into their final columns.

Reading a whole payload first and converting it afterwards holds the payload (98 bytes a
candle) beside the result (64 bytes a candle in float mode): 2.5x the result's size at
the peak. `ColumnSink` converts each chunk as it arrives into columns preallocated for
an upper bound of the row count (from the catalog), so the peak is the result plus one
chunk; a bound that was too low is grown by doubling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tradestore.marketdata import binary

FLOAT_COLUMNS = ("open", "high", "low", "close", "volume")
VALUE_COLUMNS = (*FLOAT_COLUMNS, "vwap")


def allocate_columns(capacity: int, *, exact: bool) -> dict[str, npt.NDArray[Any]]:
    """Empty result columns of a read. In float mode the value columns are the rows of one
    2-D array, which pandas can hold as one block without copying (CandleFrame.to_pandas);
    in exact mode they are scaled int64."""
    if exact:
        values = {name: np.empty(capacity, dtype=np.int64) for name in VALUE_COLUMNS}
    else:
        block = np.empty((len(VALUE_COLUMNS), capacity), dtype=np.float64)
        values = dict(zip(VALUE_COLUMNS, block, strict=True))
    return {
        "timestamp": np.empty(capacity, dtype="datetime64[us]"),
        **values,
        "trades_count": np.empty(capacity, dtype=np.int64),
    }


def grow_columns(
    columns: dict[str, npt.NDArray[Any]], used: int, capacity: int, *, exact: bool
) -> dict[str, npt.NDArray[Any]]:
    """Columns of `capacity` holding the first `used` values of `columns`."""
    grown = allocate_columns(capacity, exact=exact)
    for name, column in columns.items():
        grown[name][:used] = column[:used]
    return grown


class ColumnSink:
    """Columns of READ_COLUMNS rows: timestamps as datetime64[us]; prices, volume and
    vwap as float64 (NaN for unknown vwap), or exact scaled int64 when `exact`."""

    def __init__(self, capacity: int, *, exact: bool) -> None:
        self.exact = exact
        self.n = 0
        self._pending = b""
        self._header_done = False
        self.columns = allocate_columns(capacity, exact=exact)

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        data = self._pending + bytes(chunk)
        if not self._header_done:
            header = binary.header_length(data)
            if header is None:
                self._pending = data  # the header is not complete yet
                return
            data = data[header:]
            self._header_done = True
        count = len(data) // binary.READ_DTYPE.itemsize
        if count:
            self._append(np.frombuffer(data, dtype=binary.READ_DTYPE, count=count))
        self._pending = data[count * binary.READ_DTYPE.itemsize :]

    def finish(self) -> dict[str, npt.NDArray[Any]]:
        if not self._header_done or self._pending not in (binary.TRAILER, b""):
            raise ValueError("unexpected row width in binary COPY stream (a NULL column?)")
        return {name: column[: self.n] for name, column in self.columns.items()}

    def _append(self, rows: npt.NDArray[Any]) -> None:
        end = self.n + len(rows)
        if end > len(self.columns["timestamp"]):
            self._grow(max(end, 2 * len(self.columns["timestamp"])))
        window = slice(self.n, end)
        self.columns["timestamp"][window] = binary.pg_to_datetime64(rows["ts"])
        for name in FLOAT_COLUMNS:
            self.columns[name][window] = self._value(rows[name])
        vwap = rows["vwap"].astype(np.int64)
        if self.exact:
            self.columns["vwap"][window] = vwap
        else:
            self.columns["vwap"][window] = np.where(
                vwap != binary.NO_VWAP, vwap / binary.SCALE, np.nan
            )
        self.columns["trades_count"][window] = rows["trades_count"]
        self.n = end

    def _value(self, raw: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return raw.astype(np.int64) if self.exact else binary.scaled_to_float(raw)

    def _grow(self, capacity: int) -> None:
        self.columns = grow_columns(self.columns, self.n, capacity, exact=self.exact)
