"""tradestore: the data persistence layer of an algorithmic trading platform.

Everything a caller names is importable from here: the store (and `connect()`, its
blocking form for notebooks and scripts), its settings and errors,
the trading models (inputs `New*`, rows `Strategy`, `Order`, `Trade`, their enums and
`TradeFilters`), and the market-data types (`Timeframe`, `CandleFrame`, `IngestResult`,
`BackfillResult`, `StoredSeries`), and the analytics rows (`Backtest`, `BacktestResults`,
`NewSnapshot`, `Snapshot`).

Names are imported on first use (PEP 562): `import tradestore`, and the CLI's `--help`,
do not load psycopg, numpy or pyarrow until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradestore.analytics.backtests import Backtest, BacktestResults
    from tradestore.analytics.portfolio import NewSnapshot, Snapshot
    from tradestore.errors import (
        ConfigurationError,
        Conflict,
        ConstraintViolation,
        DatabaseUnavailable,
        Diagnostics,
        ExchangeError,
        MigrationError,
        NotFound,
        PoolExhausted,
        TradeStoreError,
        TransientError,
        ValidationError,
    )
    from tradestore.exchange.backfill import BackfillResult
    from tradestore.health import Health
    from tradestore.marketdata.frame import CandleFrame
    from tradestore.marketdata.ingest import IngestResult, RejectedRow
    from tradestore.marketdata.repository import StoredSeries
    from tradestore.settings import Settings, TimeSeriesMode, load_settings
    from tradestore.store import TradeStore
    from tradestore.sync import SyncTradeStore, connect
    from tradestore.timeframes import Timeframe
    from tradestore.trading.models import (
        NewOrder,
        NewStrategy,
        NewTrade,
        Order,
        OrderStatus,
        OrderType,
        Side,
        Strategy,
        StrategyChanges,
        StrategyPerformance,
        TimeInForce,
        Trade,
        TradeStatus,
        TradeType,
    )
    from tradestore.trading.trades import TradeFilters, TradePage

_HOMES = {
    "BackfillResult": "tradestore.exchange.backfill",
    "Backtest": "tradestore.analytics.backtests",
    "BacktestResults": "tradestore.analytics.backtests",
    "CandleFrame": "tradestore.marketdata.frame",
    "ConfigurationError": "tradestore.errors",
    "Conflict": "tradestore.errors",
    "ConstraintViolation": "tradestore.errors",
    "DatabaseUnavailable": "tradestore.errors",
    "Diagnostics": "tradestore.errors",
    "ExchangeError": "tradestore.errors",
    "Health": "tradestore.health",
    "IngestResult": "tradestore.marketdata.ingest",
    "MigrationError": "tradestore.errors",
    "NewOrder": "tradestore.trading.models",
    "NewSnapshot": "tradestore.analytics.portfolio",
    "NewStrategy": "tradestore.trading.models",
    "NewTrade": "tradestore.trading.models",
    "NotFound": "tradestore.errors",
    "Order": "tradestore.trading.models",
    "OrderStatus": "tradestore.trading.models",
    "OrderType": "tradestore.trading.models",
    "PoolExhausted": "tradestore.errors",
    "RejectedRow": "tradestore.marketdata.ingest",
    "Settings": "tradestore.settings",
    "Side": "tradestore.trading.models",
    "Snapshot": "tradestore.analytics.portfolio",
    "StoredSeries": "tradestore.marketdata.repository",
    "Strategy": "tradestore.trading.models",
    "StrategyChanges": "tradestore.trading.models",
    "StrategyPerformance": "tradestore.trading.models",
    "TimeInForce": "tradestore.trading.models",
    "TimeSeriesMode": "tradestore.settings",
    "Timeframe": "tradestore.timeframes",
    "Trade": "tradestore.trading.models",
    "TradeFilters": "tradestore.trading.trades",
    "TradePage": "tradestore.trading.trades",
    "TradeStatus": "tradestore.trading.models",
    "SyncTradeStore": "tradestore.sync",
    "TradeStore": "tradestore.store",
    "connect": "tradestore.sync",
    "TradeStoreError": "tradestore.errors",
    "TradeType": "tradestore.trading.models",
    "TransientError": "tradestore.errors",
    "ValidationError": "tradestore.errors",
    "load_settings": "tradestore.settings",
}

__all__ = [
    "BackfillResult",
    "Backtest",
    "BacktestResults",
    "CandleFrame",
    "ConfigurationError",
    "Conflict",
    "ConstraintViolation",
    "DatabaseUnavailable",
    "Diagnostics",
    "ExchangeError",
    "Health",
    "IngestResult",
    "MigrationError",
    "NewOrder",
    "NewSnapshot",
    "NewStrategy",
    "NewTrade",
    "NotFound",
    "Order",
    "OrderStatus",
    "OrderType",
    "PoolExhausted",
    "RejectedRow",
    "Settings",
    "Side",
    "Snapshot",
    "StoredSeries",
    "Strategy",
    "StrategyChanges",
    "StrategyPerformance",
    "SyncTradeStore",
    "TimeInForce",
    "TimeSeriesMode",
    "Timeframe",
    "Trade",
    "TradeFilters",
    "TradePage",
    "TradeStatus",
    "TradeStore",
    "TradeStoreError",
    "TradeType",
    "TransientError",
    "ValidationError",
    "connect",
    "load_settings",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'tradestore' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
