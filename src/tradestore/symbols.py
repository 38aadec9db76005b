"""Market symbols, one rule for trading and market data: upper case like BTC-USD,
BTCUSDT or BTC/USDT, and CCXT's unified derivatives, BTC/USDT:USDT (a perpetual settled
in USDT) and BTC/USDT:USDT-251226 (a dated future); at most 20 characters (the columns'
width)."""

from __future__ import annotations

import re

SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,12}([-/_][A-Z0-9]{1,12}){0,2}(:[A-Z0-9]{1,12}(-[0-9]{6})?)?$")
MAX_LENGTH = 20
DEFAULT_VENUE = "dydx"  # the seed's one source; every series stored before venues had it
RULE = (
    "upper case like BTC-USD, BTCUSDT, BTC/USDT or BTC/USDT:USDT for a perpetual, "
    f"at most {MAX_LENGTH} characters"
)


def is_symbol(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_LENGTH and bool(SYMBOL_RE.match(value))
