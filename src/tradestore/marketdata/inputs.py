"""Any candle input -> chunks of exact columns (timestamps in Unix µs, values * 1e8).

Accepted: candle objects or dicts (keys or attributes timestamp|time|date|startedAt,
open, high, low, close, volume, optional trades_count|trades and vwap), lists of
[timestamp, open, high, low, close, volume] (CCXT's fetch_ohlcv), a numpy
structured array, a pandas or polars DataFrame (timestamp column or DatetimeIndex), a
pyarrow Table or RecordBatch, or an iterable of any of those (streamed chunk by chunk).

Exactness, one rule for every input path: Decimal, str (CSV text), int and Arrow decimal
values are exact and must fit NUMERIC(18,8) (a value with non-zero digits past the 8th
decimal is rejected, never rounded); binary floats (a float in a dict, a float column)
are rounded to the nearest 1e-8, ties to even. Timestamps: aware values are converted
to UTC; naive ones are taken as UTC; integer timestamps are read as s, ms, µs or ns by
their magnitude; a missing one (None, NaN, NaT, blank) rejects its row. Rows that
cannot be converted are reported, with their index in the whole input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import numpy.typing as npt

from tradestore.errors import ValidationError, shown
from tradestore.marketdata.binary import NO_TRADES, NO_VWAP, SCALE

PRICE_FIELDS = ("open", "high", "low", "close", "volume")
TIME_NAMES = ("timestamp", "time", "date", "datetime", "open_time", "startedAt", "ts")
TRADES_NAMES = ("trades_count", "trades", "count", "number_of_trades")
MAX_SCALED = 999_999_999_999_999_999  # 9,999,999,999.99999999
SCALED_LIMIT = 1e18  # the first scaled value that does not fit (exact as a float)
CHUNK_ROWS = 100_000


@dataclass
class Chunk:
    """Exact columns of up to CHUNK_ROWS candles; `offset` is the first row's index."""

    offset: int
    ts_us: npt.NDArray[np.int64]
    values: dict[str, npt.NDArray[np.int64]]  # open..volume, * 1e8
    trades_count: npt.NDArray[np.int64]  # NO_TRADES where unknown
    vwap: npt.NDArray[np.int64]  # NO_VWAP where unknown
    symbols: npt.NDArray[Any] | None = None  # per-row symbol column, if the input had one
    timeframes: npt.NDArray[Any] | None = None
    rejected: dict[int, str] = field(default_factory=dict)  # local index -> reason

    def __len__(self) -> int:
        return len(self.ts_us)

    def reject(self, mask: npt.NDArray[np.bool_], reason: str) -> None:
        for k in np.flatnonzero(mask):
            self.rejected.setdefault(int(k), reason)


def chunks(data: Any, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Normalise `data` into exact chunks, streaming iterables of frames."""
    offset = 0
    for columns in _column_sets(data, chunk_rows):
        chunk = _to_chunk(columns, offset)
        offset += len(chunk)
        yield chunk


# --- recognising inputs ---------------------------------------------------------------


def _column_sets(data: Any, chunk_rows: int) -> Iterator[dict[str, npt.NDArray[Any]]]:
    """Yield dicts of column name -> numpy array, at most chunk_rows rows each."""
    if _is_frame(data):
        yield from _frame_slices(data, chunk_rows)
    elif isinstance(data, np.ndarray):
        if data.dtype.names is None:
            raise ValidationError("a numpy input must be a structured array with named fields")
        yield from _slices({n: data[n] for n in data.dtype.names}, chunk_rows)
    elif isinstance(data, (list, tuple)) and (not data or not _is_frame(data[0])):
        for start in range(0, len(data), chunk_rows):
            yield _records_to_columns(data[start : start + chunk_rows], start)
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        pending: list[Any] = []
        for item in data:
            if _is_frame(item) or isinstance(item, np.ndarray):
                if pending:
                    yield _records_to_columns(pending, 0)
                    pending = []
                yield from _column_sets(item, chunk_rows)
            else:
                pending.append(item)
                if len(pending) >= chunk_rows:
                    yield _records_to_columns(pending, 0)
                    pending = []
        if pending:
            yield _records_to_columns(pending, 0)
    else:
        raise ValidationError(
            f"cannot read candles from a {type(data).__name__}: give candle objects or dicts, "
            "a numpy structured array, a pandas/polars DataFrame or a pyarrow Table"
        )


def _is_frame(obj: Any) -> bool:
    module = type(obj).__module__.split(".")[0]
    return module in ("pandas", "polars", "pyarrow")


def _slices(columns: dict[str, npt.NDArray[Any]], size: int) -> Iterator[dict[str, Any]]:
    n = len(next(iter(columns.values()))) if columns else 0
    for start in range(0, max(n, 1) if n else 0, size):
        yield {k: v[start : start + size] for k, v in columns.items()}


def _frame_slices(frame: Any, size: int) -> Iterator[dict[str, npt.NDArray[Any]]]:
    module = type(frame).__module__.split(".")[0]
    if module == "pandas":
        yield from _slices(_pandas_columns(frame), size)
        return
    table = frame.to_arrow() if module == "polars" else frame
    for start in range(0, table.num_rows, size):  # Arrow slices are zero-copy
        yield _arrow_columns(table.slice(start, size))


def _pandas_columns(frame: Any) -> dict[str, npt.NDArray[Any]]:
    import pandas as pd

    columns = {str(c): frame[c] for c in frame.columns}
    if not any(name in columns for name in TIME_NAMES) and isinstance(
        frame.index, pd.DatetimeIndex
    ):
        columns["timestamp"] = frame.index.to_series(index=frame.index)
    out: dict[str, npt.NDArray[Any]] = {}
    for name, series in columns.items():
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            out[name] = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            out[name] = series.to_numpy("datetime64[us]")
        else:
            out[name] = series.to_numpy()
    return out


def _arrow_columns(table: Any) -> dict[str, npt.NDArray[Any]]:
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    out: dict[str, npt.NDArray[Any]] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        out[name] = _arrow_to_numpy(column)
    return out


def _arrow_to_numpy(column: Any) -> npt.NDArray[Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = column.cast(pa.timestamp("us", tz="UTC"))
        return np.asarray(
            column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False), dtype="datetime64[us]"
        )
    if pa.types.is_decimal(kind) and kind.scale <= 8 and column.null_count == 0:
        return ScaledArray.from_arrow(column.cast(pa.decimal128(38, 8)))
    if pa.types.is_decimal(kind):
        return np.asarray(column.to_pylist(), dtype=object)
    if column.null_count:
        if pa.types.is_floating(kind) or pa.types.is_integer(kind):
            return np.asarray(pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy())
        return np.asarray(column.to_pylist(), dtype=object)
    return np.asarray(column.to_numpy(zero_copy_only=False))


class ScaledArray(np.ndarray):
    """int64 values already multiplied by 1e8 (exact, from Arrow decimals)."""

    overflow: npt.NDArray[np.bool_]

    @classmethod
    def from_arrow(cls, column: Any) -> ScaledArray:
        raw = np.frombuffer(column.buffers()[1], dtype="<i8")
        pairs = raw[2 * column.offset : 2 * (column.offset + len(column))].reshape(-1, 2)
        low, high = pairs[:, 0].copy(), pairs[:, 1]
        out = low.view(cls)
        # a value beyond int64 has a high word that is not the sign extension of the low one
        out.overflow = high != (low >> 63)
        return out


def _records_to_columns(records: list[Any] | tuple[Any, ...], start: int) -> dict[str, Any]:
    names = ["timestamp", *PRICE_FIELDS, "trades_count", "vwap", "symbol", "timeframe"]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for record in records:
        if isinstance(record, list | tuple):  # CCXT fetch_ohlcv: [ms, o, h, l, c, v]
            record = _positional(record)
        get = record.get if isinstance(record, dict) else lambda k, r=record: getattr(r, k, None)
        columns["timestamp"].append(_first(get, TIME_NAMES))
        for name in PRICE_FIELDS:
            columns[name].append(get(name))
        columns["trades_count"].append(_first(get, TRADES_NAMES))
        columns["vwap"].append(get("vwap"))
        columns["symbol"].append(get("symbol"))
        columns["timeframe"].append(get("timeframe"))
    out = {name: np.asarray(values, dtype=object) for name, values in columns.items()}
    for optional in ("trades_count", "vwap", "symbol", "timeframe"):
        if all(v is None for v in columns[optional]):
            del out[optional]
    return out


def _positional(record: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    if len(record) < 6:
        return {"timestamp": record[0] if record else None}  # its prices: reported missing
    return dict(zip(("timestamp", *PRICE_FIELDS), record[:6], strict=True))


def _first(get: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        value = get(name)
        if value is not None:
            return value
    return None


# --- converting columns ------------------------------------------------------------------


def _to_chunk(columns: dict[str, npt.NDArray[Any]], offset: int) -> Chunk:
    lowered = {name.lower(): values for name, values in columns.items()}
    ts_name = next((n.lower() for n in TIME_NAMES if n.lower() in lowered), None)
    missing = [n for n in PRICE_FIELDS if n not in lowered]
    if ts_name is None or missing:
        need = ", ".join(["timestamp"] * (ts_name is None) + missing)
        raise ValidationError(f"candle input is missing column(s): {need}", field=need)
    n = len(lowered[ts_name])
    rejected: dict[int, str] = {}
    ts_us = _timestamps(lowered[ts_name], rejected)
    values = {name: _scaled(lowered[name], name, rejected) for name in PRICE_FIELDS}
    trades_name = next((t for t in TRADES_NAMES if t in lowered), None)
    trades = (
        _trades(lowered[trades_name], rejected)
        if trades_name
        else np.full(n, NO_TRADES, dtype=np.int64)
    )
    vwap = (
        _scaled(lowered["vwap"], "vwap", rejected, missing_ok=True)
        if "vwap" in lowered
        else np.full(n, NO_VWAP, dtype=np.int64)
    )
    return Chunk(
        offset=offset,
        ts_us=ts_us,
        values=values,
        trades_count=trades,
        vwap=vwap,
        symbols=lowered.get("symbol"),
        timeframes=lowered.get("timeframe"),
        rejected=rejected,
    )


def _timestamps(values: npt.NDArray[Any], rejected: dict[int, str]) -> npt.NDArray[np.int64]:
    if np.issubdtype(values.dtype, np.datetime64):
        out = values.astype("datetime64[us]").astype(np.int64)
        for k in np.flatnonzero(np.isnat(values)):
            rejected.setdefault(int(k), "timestamp: missing")
        return out
    if np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating):
        return _epoch_to_us(values, rejected)
    out = np.zeros(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if _is_missing(value):
            rejected.setdefault(i, "timestamp: missing")
            continue
        try:
            out[i] = _one_timestamp(value)
        except (TypeError, ValueError, OverflowError):
            rejected.setdefault(i, f"timestamp: not a time ({shown(value)})")
    return out


def _is_missing(value: Any) -> bool:
    """None, NaN, NaT or a blank string: a cell with no value."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value != value)  # NaN and NaT are not equal to themselves
    except (TypeError, ValueError):
        return False


def _epoch_to_us(values: npt.NDArray[Any], rejected: dict[int, str]) -> npt.NDArray[np.int64]:
    """Integer epochs by magnitude: <1e11 s, <1e14 ms, <1e17 µs, else ns."""
    as_float = values.astype(np.float64)
    bad = ~np.isfinite(as_float)
    magnitude = np.abs(np.where(bad, 0, as_float))
    factor = np.select(
        [magnitude < 1e11, magnitude < 1e14, magnitude < 1e17], [1_000_000, 1000, 1], 0
    )
    ints = np.where(bad, 0, values).astype(np.int64)
    out = np.where(factor == 0, ints // 1000, ints * np.maximum(factor, 1))
    for k in np.flatnonzero(bad):
        rejected.setdefault(
            int(k),
            "timestamp: missing" if np.isnan(as_float[k]) else "timestamp: not a finite number",
        )
    return out.astype(np.int64)


def _one_timestamp(value: Any) -> int:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[us]").astype(np.int64))
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if not np.isfinite(float(value)):
            raise ValueError("not a finite number")
        return int(_epoch_to_us(np.asarray([value]), {})[0])
    if isinstance(value, str):
        return _one_timestamp(datetime.fromisoformat(value.replace("Z", "+00:00")))
    raise TypeError(type(value).__name__)


def _scaled(
    values: npt.NDArray[Any], name: str, rejected: dict[int, str], *, missing_ok: bool = False
) -> npt.NDArray[np.int64]:
    if isinstance(values, ScaledArray):
        out = np.asarray(values, dtype=np.int64)
        bad = values.overflow | (np.abs(out) > MAX_SCALED)
        for k in np.flatnonzero(bad):
            rejected.setdefault(int(k), f"{name}: too large for NUMERIC(18,8)")
        return out
    if np.issubdtype(values.dtype, np.floating):
        finite = np.isfinite(values)
        if missing_ok:
            return _floats_with_missing(values, name, rejected)
        for k in np.flatnonzero(~finite):
            rejected.setdefault(int(k), f"{name}: NaN or infinite value")
        scaled = np.rint(np.where(finite, values, 0) * SCALE)
        return _check_range(scaled, name, rejected)
    if np.issubdtype(values.dtype, np.integer):
        big = np.abs(values) > MAX_SCALED // SCALE
        for k in np.flatnonzero(big):
            rejected.setdefault(int(k), f"{name}: too large for NUMERIC(18,8)")
        return np.where(big, 0, values).astype(np.int64) * SCALE
    return _objects(values, name, rejected, missing_ok)


def _floats_with_missing(
    values: npt.NDArray[np.floating[Any]], name: str, rejected: dict[int, str]
) -> npt.NDArray[np.int64]:
    missing = np.isnan(values)
    infinite = np.isinf(values)
    for k in np.flatnonzero(infinite):
        rejected.setdefault(int(k), f"{name}: infinite value")
    ok = ~(missing | infinite)
    scaled = _check_range(np.rint(np.where(ok, values, 0) * SCALE), name, rejected)
    return np.where(ok, scaled, NO_VWAP)


def _check_range(
    scaled: npt.NDArray[np.float64], name: str, rejected: dict[int, str]
) -> npt.NDArray[np.int64]:
    # in float: MAX_SCALED rounds up to 1e18 exactly, so `> MAX_SCALED` let 1e10 through
    big = ~(np.abs(scaled) < SCALED_LIMIT)
    for k in np.flatnonzero(big):
        rejected.setdefault(int(k), f"{name}: too large for NUMERIC(18,8)")
    return np.where(big, 0, scaled).astype(np.int64)


def _objects(
    values: npt.NDArray[Any], name: str, rejected: dict[int, str], missing_ok: bool
) -> npt.NDArray[np.int64]:
    """Python values one by one: binary floats are rounded to 8 decimals (half to even,
    as a float column is); Decimal, int and text are exact and must fit."""
    out = np.zeros(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if value is None and missing_ok:
            out[i] = NO_VWAP
            continue
        if isinstance(value, float | np.floating):
            scaled, reason = _one_float(float(value))
        else:
            scaled, reason = _one_exact(value)
        if reason:
            rejected.setdefault(i, f"{name}: {reason}")
        else:
            out[i] = scaled
    return out


def _one_float(value: float) -> tuple[int, str | None]:
    if not np.isfinite(value):
        return 0, "NaN or infinite value"
    scaled = float(np.rint(value * SCALE))
    if not abs(scaled) < SCALED_LIMIT:
        return 0, "too large for NUMERIC(18,8)"
    return int(scaled), None


def _one_exact(value: Any) -> tuple[int, str | None]:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        return 0, f"not a number ({shown(value)})"
    if not number.is_finite():
        return 0, "NaN or infinite value"
    if number != number.quantize(Decimal("1e-8")):
        return 0, "more than 8 decimal places"
    scaled = int(number.scaleb(8))
    if abs(scaled) > MAX_SCALED:
        return 0, "too large for NUMERIC(18,8)"
    return scaled, None


def _trades(values: npt.NDArray[Any], rejected: dict[int, str]) -> npt.NDArray[np.int64]:
    if np.issubdtype(values.dtype, np.integer):
        bad = (values < 0) | (values > 2**31 - 1)
        for k in np.flatnonzero(bad):
            rejected.setdefault(int(k), f"trades_count: must be a whole number >= 0 ({values[k]})")
        return np.where(bad, NO_TRADES, values).astype(np.int64)
    out = np.full(len(values), NO_TRADES, dtype=np.int64)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        try:
            count = int(value)
        except (TypeError, ValueError, OverflowError):
            rejected.setdefault(i, f"trades_count: not an integer ({value!r})")
            continue
        if count < 0 or count > 2**31 - 1 or count != value:
            rejected.setdefault(i, f"trades_count: must be a whole number >= 0 ({value!r})")
        else:
            out[i] = count
    return out
