"""Resampling stored candles into a coarser timeframe, in SQL.

Buckets are UTC-aligned (`date_bin` from the Unix epoch; every stored timeframe divides
a day, so buckets also start at midnight UTC; weeks start on Monday, months on the 1st)
and labelled by their start, closed on the left: the same as pandas `resample(rule,
label="left", closed="left")` (for 1w, pandas' W-MON bins with the same anchor).
Per bucket: first open, max high, min low, last close, summed volume and trade count
(NULL when no source candle has one), and the volume-weighted price sum(p_i * v_i) /
sum(v_i), where p_i is the source candle's vwap or, when it has none, its close (NULL
when the volume is 0).
Buckets with no source candle are absent (pandas would give a NaN row).
"""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from tradestore.errors import ValidationError
from tradestore.marketdata.frame import CandleFrame
from tradestore.marketdata.reads import SCALED_COLUMNS, CandleReader, to_frame
from tradestore.marketdata.validation import check_symbol, check_venue
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe
from tradestore.times import require_aware

# Aggregates over `src` (market_data rows of one series), grouped by `bucket`.
BUCKET_AGGREGATES = sql.SQL("""
    (array_agg(open ORDER BY timestamp))[1] AS open,
    max(high) AS high,
    min(low) AS low,
    (array_agg(close ORDER BY timestamp DESC))[1] AS close,
    sum(volume) AS volume,
    sum(trades_count) AS trades_count,
    round(sum(coalesce(vwap, close) * volume) / nullif(sum(volume), 0), 8) AS vwap
""")

RESAMPLE_SQL = sql.SQL("""
SELECT {columns}
  FROM (SELECT {bucket} AS timestamp,
               {aggregates}
          FROM market_data_range({venue}, {symbol}, {source}, {start}, {end})
         GROUP BY 1) b
 ORDER BY 1
""")


def bucket_range(tf: Timeframe, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[first, last): the whole buckets of tf whose start (their label) is in [start,
    end), as a read of stored tf candles over [start, end) would return them."""
    first = tf.bucket_start(start)
    last = tf.bucket_start(end)
    return (tf.next_start(first) if first < start else first), (
        tf.next_start(last) if last < end else last
    )


def check_coarser(source: Timeframe, target: Timeframe) -> None:
    if not source.divides(target):
        raise ValidationError(
            f"cannot resample {source.value} into {target.value}: the target must be a "
            "coarser multiple of the source",
            field="timeframe",
            value=target.value,
        )


async def resample(
    reader: CandleReader,
    symbol: str,
    target: Timeframe | str,
    start: datetime,
    end: datetime,
    *,
    source: Timeframe | str = Timeframe.M1,
    exact: bool = False,
    venue: str = DEFAULT_VENUE,
) -> CandleFrame:
    """Candles of `target` labelled in [start, end), each built from all its stored
    `source` candles (a bucket is never partial)."""
    check_symbol(symbol)
    tgt, src = Timeframe.parse(target), Timeframe.parse(source)
    check_coarser(src, tgt)
    require_aware("start", start)
    require_aware("end", end)
    first, last = bucket_range(tgt, start, end)
    query = RESAMPLE_SQL.format(
        columns=SCALED_COLUMNS,
        bucket=tgt.bucket_sql(sql.Identifier("timestamp")),
        aggregates=BUCKET_AGGREGATES,
        venue=sql.Literal(check_venue(venue)),
        symbol=sql.Literal(symbol),
        source=sql.Literal(src.value),
        start=sql.Literal(first),
        end=sql.Literal(last),
    )
    return to_frame(await reader.copy_out(query), symbol, tgt, exact=exact)
