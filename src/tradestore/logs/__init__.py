"""system_logs: the logging handler that writes them, and their search."""

from tradestore.logs.handler import SystemLogHandler, log_context
from tradestore.logs.search import LogFilter, search_logs

__all__ = ["LogFilter", "SystemLogHandler", "log_context", "search_logs"]
