from __future__ import annotations

import uuid
from typing import Any

from tradestore import TradeStore
from tradestore.trading.models import Strategy


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
