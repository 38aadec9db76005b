"""The layout of a block's value column (migration 0025): a frame of reference.

A column is a 10-byte header (offset width w in bytes, decimal exponent k, int8 base,
big-endian) and one w-byte big-endian offset per candle; value i is base + offset_i *
10^k, exact. The base is the column's minimum and 10^k the largest power of ten dividing
every distance from it, so a day of 2-decimal prices (multiples of 10^6 at the 1e8
scale) takes 2 or 4 bytes a candle where int8 took 8, and a column of one value (no
vwap in the whole block) takes none. Values spanning more than int8 (a vwap sentinel
beside real values) are stored as they are: base 0, k 0, w 8.

`market_data_pack` and `market_data_value_at` are the same layout in SQL.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

HEADER = struct.Struct(">BBq")  # width, exponent, base
MAX_EXPONENT = 18
INT64_MAX = 2**63 - 1
_OFFSET_TYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype(">i1"),
    2: np.dtype(">i2"),
    4: np.dtype(">i4"),
    8: np.dtype(">i8"),
}


class Column(NamedTuple):
    """A column as stored: its offsets (a view of the message; None when all are 0),
    their multiplier 10^k and the base."""

    offsets: npt.NDArray[Any] | None
    multiplier: int
    base: int


def pack_column(values: npt.NDArray[np.int64]) -> bytes:
    """Scaled int64 values (at least one) in the layout."""
    lo, hi = int(values.min()), int(values.max())
    if hi - lo > INT64_MAX:
        return HEADER.pack(8, 0, 0) + values.astype(">i8").tobytes()
    distances = values - np.int64(lo)  # no overflow: every distance is within int64
    exponent = _exponent(int(np.gcd.reduce(distances)))
    span = (hi - lo) // 10**exponent
    width = _width(span)
    if width == 0:
        return HEADER.pack(0, exponent, lo)
    offsets = distances // np.int64(10**exponent) if exponent else distances
    return HEADER.pack(width, exponent, lo) + offsets.astype(_OFFSET_TYPES[width]).tobytes()


def read_column(data: Any, pos: int, count: int) -> Column:
    """The column of `count` values at data[pos:], read in place."""
    width, exponent, base = HEADER.unpack_from(data, pos)
    if width == 0:
        return Column(None, 10**exponent, base)
    offsets = np.frombuffer(data, _OFFSET_TYPES[width], count, pos + HEADER.size)
    return Column(offsets, 10**exponent, base)


def unpack_many(columns: Sequence[Column], counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The scaled int64 values of consecutive columns (counts[i] values in column i) in
    one array: their offsets joined, then multiplied and based, all columns at once (a
    factor shared by every column is applied as a scalar: no array of it is made)."""
    bases = np.array([c.base for c in columns], dtype=np.int64)
    if all(c.offsets is None for c in columns):  # one value a column (no vwap, trades)
        return np.repeat(bases, counts)
    zeros = np.zeros(int(counts.max()), dtype=np.int8)
    parts = [
        zeros[:n] if c.offsets is None else c.offsets for c, n in zip(columns, counts, strict=True)
    ]
    out = np.concatenate(parts, dtype=np.int64)
    _apply(np.multiply, out, np.array([c.multiplier for c in columns], dtype=np.int64), counts)
    _apply(np.add, out, bases, counts)
    return out


def _apply(
    op: np.ufunc,
    out: npt.NDArray[np.int64],
    factors: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
) -> None:
    """out = op(out, factors[i]) over column i's values, in place; nothing for identity."""
    first = factors[0]
    if (factors == first).all():
        if first != op.identity:
            op(out, first, out=out)
        return
    op(out, np.repeat(factors, counts), out=out)


def _exponent(divisor: int) -> int:
    """The largest k <= 18 with 10^k dividing `divisor` (0 for 0: a constant column)."""
    exponent = 0
    while divisor and exponent < MAX_EXPONENT and divisor % 10 ** (exponent + 1) == 0:
        exponent += 1
    return exponent


def _width(span: int) -> int:
    """Bytes of the narrowest offset that holds 0..span as a non-negative signed number."""
    if span == 0:
        return 0
    for width in (1, 2, 4):
        if span < 1 << (8 * width - 1):
            return width
    return 8
