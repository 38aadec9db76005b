"""The typed, optionally encrypted configuration store (system_config)."""

from tradestore.config.store import ConfigStore

__all__ = ["ConfigStore"]
