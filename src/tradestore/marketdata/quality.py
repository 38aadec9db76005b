"""Data quality of candles: the per-candle score stored in data_quality_score, gaps,
repeated candles and outliers. The score functions are pure (numpy, no I/O).

data_quality_score (0..100) starts at 100 and loses:
- 60 when the candle is an outlier: its log return from the previous close, or its
  high-low range, is more than 12 robust standard deviations (MAD * 1.4826, at least
  0.001) from the median of its neighbours in the same batch (a bad tick, a unit error);
- 30 when it is an "empty" candle: zero volume and O = H = L = C (a period without
  trades that the source filled with the previous close);
- 20 when it repeats the previous candle exactly with non-zero volume (a feed glitch).
Scores never go below 0. They describe trust in the row, not the market.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

OUTLIER_SIGMAS = 12.0
MIN_SCALE = 0.001  # log units: moves under 1.2% are never outliers
OUTLIER_PENALTY = 60
EMPTY_PENALTY = 30
REPEAT_PENALTY = 20


def robust_z(
    values: npt.NDArray[np.float64], *, floor: float = MIN_SCALE
) -> npt.NDArray[np.float64]:
    """|x - median| / max(1.4826 * MAD, floor).

    The floor keeps a very quiet series (MAD near 0) from calling a 0.01% move an
    outlier: log moves smaller than floor * OUTLIER_SIGMAS never are.
    """
    if len(values) == 0:
        return values
    median = np.median(values)
    scale = max(float(np.median(np.abs(values - median))) * 1.4826, floor)
    z: npt.NDArray[np.float64] = np.abs(values - median) / scale
    return z


def outlier_mask(
    high: npt.NDArray[Any], low: npt.NDArray[Any], close: npt.NDArray[Any]
) -> npt.NDArray[np.bool_]:
    h, lo, c = (np.asarray(x, dtype=np.float64) for x in (high, low, close))
    if len(c) < 20:  # too few neighbours to tell
        return np.zeros(len(c), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.diff(np.log(np.where(c > 0, c, np.nan)), prepend=np.nan)
        ranges = np.log(np.where(lo > 0, h / lo, np.nan))
    returns = np.nan_to_num(returns, nan=0.0)
    ranges = np.nan_to_num(ranges, nan=0.0)
    return (robust_z(returns) > OUTLIER_SIGMAS) | (robust_z(ranges) > OUTLIER_SIGMAS)


def empty_mask(
    open_: npt.NDArray[Any],
    high: npt.NDArray[Any],
    low: npt.NDArray[Any],
    close: npt.NDArray[Any],
    volume: npt.NDArray[Any],
) -> npt.NDArray[np.bool_]:
    """Zero volume and O = H = L = C: a period the source filled with the previous close."""
    empty: npt.NDArray[np.bool_] = (volume == 0) & (open_ == high) & (high == low) & (low == close)
    return empty


def repeat_mask(
    open_: npt.NDArray[Any],
    high: npt.NDArray[Any],
    low: npt.NDArray[Any],
    close: npt.NDArray[Any],
    volume: npt.NDArray[Any],
) -> npt.NDArray[np.bool_]:
    """The candle repeats the previous one exactly, with non-zero volume (a feed glitch)."""
    same = np.zeros(len(close), dtype=bool)
    if len(close) > 1:
        cols = (open_, high, low, close, volume)
        same[1:] = np.logical_and.reduce([c[1:] == c[:-1] for c in cols]) & (volume[1:] > 0)
    return same


def quality_scores(
    open_: npt.NDArray[Any],
    high: npt.NDArray[Any],
    low: npt.NDArray[Any],
    close: npt.NDArray[Any],
    volume: npt.NDArray[Any],
) -> npt.NDArray[np.int16]:
    """The data_quality_score of each candle of one series, in time order."""
    score = np.full(len(close), 100, dtype=np.int16)
    score -= OUTLIER_PENALTY * outlier_mask(high, low, close)
    score -= EMPTY_PENALTY * empty_mask(open_, high, low, close, volume)
    score -= REPEAT_PENALTY * repeat_mask(open_, high, low, close, volume)
    return np.maximum(score, 0).astype(np.int16)
