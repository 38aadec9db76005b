"""tradestore: the data persistence layer of an algorithmic trading platform."""

from tradestore.errors import (
    ConfigurationError,
    Conflict,
    ConstraintViolation,
    MigrationError,
    NotFound,
    PoolExhausted,
    TradeStoreError,
    TransientError,
    ValidationError,
)
from tradestore.settings import Settings, TimeSeriesMode, load_settings
from tradestore.store import Health, TradeStore

__all__ = [
    "ConfigurationError",
    "Conflict",
    "ConstraintViolation",
    "Health",
    "MigrationError",
    "NotFound",
    "PoolExhausted",
    "Settings",
    "TimeSeriesMode",
    "TradeStore",
    "TradeStoreError",
    "TransientError",
    "ValidationError",
    "load_settings",
]
__version__ = "0.1.0"
