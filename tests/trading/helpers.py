from __future__ import annotations

import uuid
from typing import Any

from tradestore import TradeStore
from tradestore.trading.models import Strategy, Trade


async def new_strategy(store: TradeStore, **overrides: Any) -> Strategy:
    data: dict[str, Any] = {
        "name": f"strat-{uuid.uuid4().hex[:10]}",
        "version": "1.0",
        "config": {"fast": 12, "slow": 26},
        "timeframe": "1h",
        "symbols": ["BTC-USD"],
    }
    data.update(overrides)
    return await store.strategies.create(data)


async def new_trade(store: TradeStore, strategy_id: Any, **overrides: Any) -> Trade:
    """An open BUY of 1 BTC-USD at 100 (fields overridable)."""
    data: dict[str, Any] = {
        "strategy_id": strategy_id,
        "symbol": "BTC-USD",
        "side": "BUY",
        "entry_price": "100",
        "quantity": "1",
    }
    data.update(overrides)
    return await store.trades.open(data)
