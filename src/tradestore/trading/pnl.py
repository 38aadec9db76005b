"""Profit and loss of a closed trade, in Decimal. Pure: no I/O.

gross  = (exit - entry) * qty          for a BUY (long)
       = (entry - exit) * qty          for a SELL (short)
fees   = entry fees + exit fees        (each counted once)
pnl    = gross - fees                  exact, then rounded half-even to 8 dp
pnl %  = pnl / (entry * qty) * 100     rounded to 4 dp, clamped to DECIMAL(8,4)

The close of a trade computes this in SQL (`trade_close_pnl`, migration 0026), in the
statement that closes it; this is the definition tests hold that function to, and the
same computation for a caller's own use (a backtest's trades, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from tradestore.trading.models import Side

EIGHT_DP = Decimal("1e-8")
FOUR_DP = Decimal("1e-4")
PERCENT_LIMIT = Decimal("9999.9999")  # DECIMAL(8,4)
# Enough digits for every product of DECIMAL(18,8) values to be exact, as in SQL (the
# default 28 rounds a product past 1e20 before its 8th decimal), and for the percentage's
# quotient to be rounded once.
PRECISION = 100


@dataclass(frozen=True)
class ClosedPnl:
    pnl: Decimal
    pnl_percent: Decimal
    fees: Decimal


def close_pnl(
    *,
    side: Side,
    entry_price: Decimal,
    exit_price: Decimal,
    quantity: Decimal,
    entry_fees: Decimal,
    exit_fees: Decimal,
) -> ClosedPnl:
    direction = 1 if side is Side.BUY else -1
    with localcontext(prec=PRECISION):
        gross = (exit_price - entry_price) * quantity * direction
        fees = entry_fees + exit_fees
        pnl = (gross - fees).quantize(EIGHT_DP, rounding=ROUND_HALF_EVEN)
        notional = entry_price * quantity
        percent = (pnl * 100 / notional).quantize(FOUR_DP, rounding=ROUND_HALF_EVEN)
    percent = max(-PERCENT_LIMIT, min(PERCENT_LIMIT, percent))
    return ClosedPnl(pnl=pnl, pnl_percent=percent, fees=fees)
