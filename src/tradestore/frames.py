"""Records as columns: trades, orders, daily metrics, portfolio snapshots and equity
curves for pandas, polars and Arrow (candles have their own CandleFrame).

    trades = await store.trades.frame(TradeFilters(symbol="BTC-USD"))
    df = trades.to_pandas()               # money as float64, times as UTC datetimes
    exact = trades.to_pandas(exact=True)  # money as Decimal objects, nothing rounded
    pl_df = trades.to_polars(exact=True)  # polars Decimal columns
    table = trades.to_arrow()             # Arrow decimal128 columns (always exact)

Money columns are NUMERIC in PostgreSQL: Arrow keeps them as decimal128 of their scale;
`exact=False` (the default for pandas and polars, what numerical work wants) casts them
to float64. Ids become strings, JSON documents (config, positions, metadata) JSON text,
enums their value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa


class Records:
    """Rows of one kind (all with the same keys), ready to become a data frame."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self._values: dict[str, Any] = {
            name: [_plain(row.get(name)) for row in rows] for name in self.columns
        }
        self._length = len(rows)

    @classmethod
    def of_columns(cls, columns: Mapping[str, Any]) -> Records:
        """From whole columns (lists or numpy arrays; datetime64 is read as UTC)."""
        made = cls([], list(columns))
        made._values = dict(columns)
        made._length = len(next(iter(columns.values()))) if columns else 0
        return made

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"Records({self._length} rows: {', '.join(self.columns)})"

    def to_arrow(self, *, exact: bool = True) -> pa.Table:
        import pyarrow as pa

        arrays = [self._array(name, exact) for name in self.columns]
        return pa.Table.from_arrays(arrays, names=self.columns)

    def to_pandas(self, *, exact: bool = False) -> pd.DataFrame:
        return self.to_arrow(exact=exact).to_pandas()

    def to_polars(self, *, exact: bool = False) -> pl.DataFrame:
        import polars as pl

        frame = pl.from_arrow(self.to_arrow(exact=exact))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _array(self, name: str, exact: bool) -> pa.Array:
        import pyarrow as pa

        values = self._values[name]
        if getattr(values, "dtype", None) is not None and values.dtype.kind == "M":
            return pa.array(values).cast(pa.timestamp("us", "UTC"))
        if getattr(values, "dtype", None) is not None:
            return pa.array(values)
        if any(isinstance(v, Decimal) for v in values):
            scale = max(-v.as_tuple().exponent for v in values if isinstance(v, Decimal))  # type: ignore[operator]
            exact_array = pa.array(values, pa.decimal128(38, max(0, min(scale, 18))))
            return exact_array if exact else exact_array.cast(pa.float64())
        return pa.array(values)


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value
