"""tradestore: the data persistence layer of an algorithmic trading platform.

Everything a caller names is importable from here: the store, its settings and errors,
the trading models (inputs `New*`, rows `Strategy`, `Order`, `Trade`, their enums and
`TradeFilters`), and the market-data types (`Timeframe`, `CandleFrame`, `IngestResult`,
`BackfillResult`, `StoredSeries`), and the analytics rows (`Backtest`, `BacktestResults`,
`NewSnapshot`, `Snapshot`).
"""

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
    "load_settings",
]
__version__ = "0.1.0"
