"""The frame-of-reference layout of a block's value column (block_codec.py, migration
0025): Python and SQL write the same bytes and read back every value exactly, at the
edges of int64 too."""

from __future__ import annotations

import numpy as np
import pytest

from tradestore import TradeStore
from tradestore.marketdata import block_codec

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
PRICES = 3_000_012_000_000 + np.arange(0, 1440 * 1_000_000, 1_000_000)  # 2 decimals

COLUMNS = {
    "one value (header only)": [INT64_MIN] * 5,
    "a single candle": [123],
    "2-decimal prices (exponent 6)": PRICES.tolist(),
    "1-byte offsets": [7, 100, 134],
    "negative values": [-5_000_000_000, -2_000_000_000, 0, 3],
    "an offset past int4 (8 bytes, with a base)": [10, 10 + 2**40, 10 + 2**62],
    "a sentinel beside values (more than int64 apart)": [INT64_MIN, 5, INT64_MAX],
    "the int64 extremes": [INT64_MIN, INT64_MAX],
    "trades counts with the unknown sentinel": [-1, 0, 17, 2_147_483_647],
}


@pytest.mark.parametrize("values", list(COLUMNS.values()), ids=list(COLUMNS))
async def test_python_and_sql_write_the_same_column_and_read_it_back(
    store: TradeStore, values: list[int]
) -> None:
    array = np.array(values, dtype=np.int64)
    packed = block_codec.pack_column(array)
    assert await store.db.query_value("SELECT market_data_pack(%s::int8[])", (values,)) == packed

    column = block_codec.read_column(packed, 0, len(values))
    assert block_codec.unpack_many([column], np.array([len(values)])).tolist() == values

    in_sql = await store.db.query_value(
        "SELECT array_agg(market_data_value_at(%s, i) ORDER BY i)"
        " FROM generate_series(0, %s - 1) AS i",
        (packed, len(values)),
    )
    assert in_sql == values


def test_a_column_takes_the_narrowest_offsets_that_hold_it() -> None:
    header = block_codec.HEADER
    assert len(block_codec.pack_column(PRICES)) == header.size + 2 * len(PRICES)
    assert len(block_codec.pack_column(np.full(1440, -1, dtype=np.int64))) == header.size
    wide = np.array([INT64_MIN, 0], dtype=np.int64)
    assert len(block_codec.pack_column(wide)) == header.size + 8 * 2


GROUPS = {
    "every layout": list(COLUMNS.values()) * 2,
    "header-only columns (no vwap in any block)": [[INT64_MIN] * 5, [-1] * 3, [INT64_MIN] * 2],
    "one exponent and base": [[7, 100, 134], [7, 134]],
    "one exponent (6), bases apart": [PRICES[:3].tolist(), PRICES[5:9].tolist()],
}


@pytest.mark.parametrize("values", list(GROUPS.values()), ids=list(GROUPS))
def test_columns_unpack_together_as_each_does_alone(values: list[list[int]]) -> None:
    """BlockSink widens a batch of blocks at once: columns of different widths,
    exponents and bases (and header-only ones) side by side read back value for value."""
    packed = [block_codec.pack_column(np.array(v, dtype=np.int64)) for v in values]
    columns = [block_codec.read_column(p, 0, len(v)) for p, v in zip(packed, values, strict=True)]
    together = block_codec.unpack_many(columns, np.array([len(v) for v in values]))
    assert together.tolist() == [x for v in values for x in v]
