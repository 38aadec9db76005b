"""What an operator of a trading store watches, beside the database's own health: how
fresh each candle series is, how far the event relay is behind, how much market data is
stored (from the catalog, exact, not planner estimates), and the trading counters.

Every figure is one indexed or small query; `orders by status` counts the orders table
(cheap for the order volumes of a bot; a scrape interval of 15 s or more is assumed).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradestore.db.database import Database
from tradestore.errors import ValidationError
from tradestore.realtime.bus import BACKLOG
from tradestore.timeframes import Timeframe

SERIES = "SELECT venue, symbol, timeframe, last_ts, row_count FROM market_data_catalog"
ORDERS_BY_STATUS = "SELECT status, count(*)::bigint AS n FROM orders GROUP BY status"
OPEN_TRADES = """
SELECT count(*)::bigint AS n FROM trades WHERE status IN ('OPEN', 'PARTIALLY_FILLED')
"""
REALISED_PNL = "SELECT name, total_pnl::float8 AS pnl, total_trades FROM strategies"


@dataclass(frozen=True)
class SeriesFreshness:
    venue: str
    symbol: str
    timeframe: str
    age_s: float  # since the latest stored candle closed
    rows: int


@dataclass
class AppMetrics:
    collected_at: datetime
    series: list[SeriesFreshness] = field(default_factory=list)
    outbox_pending: int = 0
    outbox_oldest_age_s: float = 0.0  # the relay's lag: 0 when nothing waits
    orders_by_status: dict[str, int] = field(default_factory=dict)
    open_trades: int = 0
    realised_pnl: dict[str, float] = field(default_factory=dict)  # by strategy name
    closed_trades: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def collect_app_metrics(db: Database) -> AppMetrics:
    """Every part on its own; a part that fails is named in `errors`, the rest stand."""
    m = AppMetrics(collected_at=datetime.now(UTC))
    parts = {"series": _series, "outbox": _outbox, "trading": _trading}
    results = await asyncio.gather(
        *(part(db, m) for part in parts.values()), return_exceptions=True
    )
    for name, result in zip(parts, results, strict=True):
        if isinstance(result, BaseException):
            m.errors[name] = str(result) or type(result).__name__
    return m


async def _series(db: Database, m: AppMetrics) -> None:
    for r in await db.query(SERIES):
        try:
            closed = r["last_ts"] + Timeframe.parse_stored(r["timeframe"]).delta
        except ValidationError:
            continue  # a timeframe this version does not know
        m.series.append(
            SeriesFreshness(
                r["venue"],
                r["symbol"],
                r["timeframe"],
                max(0.0, (m.collected_at - closed).total_seconds()),
                int(r["row_count"]),
            )
        )


async def _outbox(db: Database, m: AppMetrics) -> None:
    row = await db.query_one(BACKLOG)
    assert row is not None
    m.outbox_pending = int(row["pending"])
    if row["oldest"] is not None:
        m.outbox_oldest_age_s = max(0.0, (m.collected_at - row["oldest"]).total_seconds())


async def _trading(db: Database, m: AppMetrics) -> None:
    m.orders_by_status = {r["status"]: int(r["n"]) for r in await db.query(ORDERS_BY_STATUS)}
    m.open_trades = int(await db.query_value(OPEN_TRADES))
    for r in await db.query(REALISED_PNL):
        m.realised_pnl[r["name"]] = float(r["pnl"] or 0.0)
        m.closed_trades[r["name"]] = int(r["total_trades"] or 0)
