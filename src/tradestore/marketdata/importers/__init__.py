"""File importers: detect a market-data file's layout and stream it as Arrow batches that
`store.market_data.store_candles` accepts. See detect.py for the layouts."""

from tradestore.marketdata.importers.detect import FileFormat, Source, detect
from tradestore.marketdata.importers.readers import open_source

__all__ = ["FileFormat", "Source", "detect", "open_source"]
