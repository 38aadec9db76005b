"""CandleFrame: candles as columns (numpy arrays), the result of every market-data read.

Prices and volumes are float64 arrays for analytics, or object arrays of `Decimal` in
exact mode (`exact=True` on reads). Timestamps are `datetime64[us]` in UTC.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tradestore.errors import ConfigurationError
from tradestore.timeframes import Timeframe

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class CandleFrame:
    symbol: str
    timeframe: Timeframe
    timestamp: npt.NDArray[np.datetime64]  # datetime64[us], UTC
    open: npt.NDArray[Any]
    high: npt.NDArray[Any]
    low: npt.NDArray[Any]
    close: npt.NDArray[Any]
    volume: npt.NDArray[Any]
    # -1 where unknown in this numpy column (int64 has no null); pandas, polars and Arrow
    # conversions (and so exports) give null there
    trades_count: npt.NDArray[np.int64] | None = None
    vwap: npt.NDArray[Any] | None = None  # NaN (float) or None (exact) where unknown
    exact: bool = False

    def __len__(self) -> int:
        return len(self.timestamp)

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        cols: dict[str, npt.NDArray[Any]] = {"timestamp": self.timestamp}
        cols.update({name: getattr(self, name) for name in PRICE_COLUMNS})
        if self.trades_count is not None:
            cols["trades_count"] = self.trades_count
        if self.vwap is not None:
            cols["vwap"] = self.vwap
        return cols

    @classmethod
    def empty(cls, symbol: str, timeframe: Timeframe, *, exact: bool = False) -> CandleFrame:
        dtype: Any = object if exact else np.float64

        def col() -> npt.NDArray[Any]:
            return np.empty(0, dtype=dtype)

        stamps: npt.NDArray[np.datetime64] = np.empty(0, dtype="datetime64[us]")
        return cls(symbol, timeframe, stamps, col(), col(), col(), col(), col(), exact=exact)

    def to_pandas(self) -> Any:
        """A pandas DataFrame indexed by a UTC DatetimeIndex named "timestamp".

        When the float columns are rows of one array (as reads allocate them), the
        DataFrame holds that array as its block, without a copy: it shares memory with
        this frame's columns."""
        pd = _optional("pandas")

        cols: dict[str, Any] = self.columns()
        index = pd.DatetimeIndex(cols.pop("timestamp"), name="timestamp").tz_localize("UTC")
        trades = cols.pop("trades_count", None)
        block = _one_block(list(cols.values()))
        if block is None:
            frame = pd.DataFrame(cols, index=index)
        else:
            frame = pd.DataFrame(block.T, columns=list(cols), index=index, copy=False)
        if trades is not None:
            counts = pd.arrays.IntegerArray(trades.copy(), trades < 0)
            frame.insert(len(PRICE_COLUMNS), "trades_count", counts)
        return frame

    def to_polars(self) -> Any:
        pl = _optional("polars")

        frame = pl.DataFrame(self.columns())
        frame = frame.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))
        if self.trades_count is None:
            return frame
        trades = pl.col("trades_count")
        return frame.with_columns(pl.when(trades >= 0).then(trades).otherwise(None))

    def to_arrow(self) -> Any:
        import pyarrow as pa

        cols = self.columns()
        arrays = {"timestamp": pa.array(cols.pop("timestamp"), type=pa.timestamp("us", tz="UTC"))}
        for name, values in cols.items():
            if name == "trades_count":
                arrays[name] = pa.array(values, mask=values < 0)
            elif self.exact and values.dtype == object:
                arrays[name] = pa.array(values, type=pa.decimal128(18, 8))
            else:
                arrays[name] = pa.array(values)
        return pa.table(arrays)


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(
            f"{module} is not installed: pip install 'tradestore[frames]'"
        ) from None


def _one_block(columns: list[npt.NDArray[Any]]) -> npt.NDArray[Any] | None:
    """The columns as one 2-D view when they are consecutive rows of one float array,
    equal in length and start (the layout `copy_stream.allocate_columns` gives), else
    None."""
    first = columns[0]
    base = first.base
    if first.dtype != np.float64 or not isinstance(base, np.ndarray) or base.ndim != 2:
        return None
    row_bytes, item = base.strides
    offset = first.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    row, column = divmod(offset, row_bytes)
    if column % item or first.strides != (item,):
        return None
    block = base[row : row + len(columns), column // item : column // item + len(first)]
    rows_match = len(block) == len(columns) and all(
        col.base is base
        and col.shape == block[i].shape
        and col.strides == block[i].strides
        and col.__array_interface__["data"] == block[i].__array_interface__["data"]
        for i, col in enumerate(columns)
    )
    return block if rows_match else None
