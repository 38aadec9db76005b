from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from tradestore import ValidationError
from tradestore.marketdata.frame import CandleFrame
from tradestore.timeframes import Timeframe


def test_parse_and_errors() -> None:
    assert Timeframe.parse("4h") is Timeframe.H4
    with pytest.raises(ValidationError, match="unknown timeframe '2m'") as caught:
        Timeframe.parse("2m")
    assert caught.value.field == "timeframe" and caught.value.value == "2m"


def test_bucket_alignment_is_utc() -> None:
    ts = datetime(2024, 3, 1, 5, 59, 59, tzinfo=UTC)
    assert Timeframe.H4.bucket_start(ts) == datetime(2024, 3, 1, 4, tzinfo=UTC)
    assert Timeframe.D1.bucket_start(ts) == datetime(2024, 3, 1, tzinfo=UTC)
    assert Timeframe.M5.is_aligned(datetime(2024, 3, 1, 0, 5, tzinfo=UTC))
    assert not Timeframe.M5.is_aligned(datetime(2024, 3, 1, 0, 6, tzinfo=UTC))


def test_candle_frame_conversions() -> None:
    stamps = np.array(["2024-01-01T00:00", "2024-01-01T00:01"], dtype="datetime64[us]")
    prices = [np.array([1.0, 2.0]) for _ in range(5)]
    frame = CandleFrame("BTC-USD", Timeframe.M1, stamps, *prices)
    assert len(frame) == 2
    assert str(frame.to_pandas().index.tz) == "UTC"
    assert frame.to_polars().height == 2
    assert str(frame.to_arrow().schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert len(CandleFrame.empty("X", Timeframe.M1, exact=True)) == 0
