"""The streaming COPY decoder gives the same columns however the stream is cut."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradestore.marketdata import binary
from tradestore.marketdata.copy_stream import ColumnSink


def payload(n: int) -> bytes:
    rows = np.zeros(n, dtype=binary.READ_DTYPE)
    rows["nfields"] = len(binary.READ_COLUMNS)
    for name, kind in binary.READ_COLUMNS:
        rows[f"{name}_len"] = np.dtype(kind).itemsize
    rows["ts"] = np.arange(n) * 60_000_000
    for i, name in enumerate(("open", "high", "low", "close", "volume")):
        rows[name] = 10_000_000_000 + np.arange(n) * (i + 1)
    rows["trades_count"] = np.where(np.arange(n) % 3 == 0, -1, np.arange(n))
    rows["vwap"] = np.where(np.arange(n) % 2 == 0, binary.NO_VWAP, 5 * binary.SCALE)
    return binary.HEADER + rows.tobytes() + binary.TRAILER


@given(st.integers(0, 300), st.lists(st.integers(1, 500), min_size=1, max_size=50))
def test_any_chunking_decodes_like_the_whole(n: int, cuts: list[int]) -> None:
    data = payload(n)
    whole = ColumnSink(n, exact=True)
    whole.feed(data)
    expected = whole.finish()
    sink = ColumnSink(1, exact=True)  # a low bound: the columns grow
    position, i = 0, 0
    while position < len(data):
        step = cuts[i % len(cuts)]
        sink.feed(memoryview(data)[position : position + step])
        position, i = position + step, i + 1
    got = sink.finish()
    for name, column in expected.items():
        assert np.array_equal(got[name], column), name
    assert len(got["timestamp"]) == n


def test_float_mode_values_and_unknown_vwap() -> None:
    sink = ColumnSink(4, exact=False)
    sink.feed(payload(4))
    columns = sink.finish()
    assert columns["open"][1] == 100.00000001
    assert np.isnan(columns["vwap"][0]) and columns["vwap"][1] == 5.0
    assert str(columns["timestamp"][1]) == "2000-01-01T00:01:00.000000"


def test_a_stream_that_is_not_copy_or_is_cut_short_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL binary COPY"):
        ColumnSink(1, exact=False).feed(b"garbage that is long enough")
    sink = ColumnSink(1, exact=False)
    sink.feed(payload(3)[:-5])
    with pytest.raises(ValueError, match="row width"):
        sink.finish()
