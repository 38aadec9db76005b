"""Portfolio snapshots: record (positions validated), latest, a range, the equity curve
as columnar arrays, and daily P&L against the previous UTC day's last snapshot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import numpy as np
import numpy.typing as npt
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from tradestore.db.database import Database
from tradestore.db.partitions import PartitionManager
from tradestore.errors import ValidationError
from tradestore.frames import Records
from tradestore.trading.models import (
    AwareDatetime,
    Money,
    NonNegativeMoney,
    Symbol,
    parse_input,
)


class Position(BaseModel):
    """One open position; extra fields are kept as given."""

    model_config = ConfigDict(extra="allow")
    symbol: Symbol
    quantity: Money
    side: str | None = Field(None, pattern="^(LONG|SHORT|BUY|SELL)$")
    entry_price: Money | None = None
    market_value: Money | None = None


class NewSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy_id: UUID | None = None
    snapshot_time: AwareDatetime | None = None
    total_value: Money
    cash_balance: Money
    unrealized_pnl: Money = Decimal(0)
    realized_pnl: Money = Decimal(0)
    positions: list[Position] = Field(default_factory=list)
    open_orders_count: int = Field(0, ge=0)
    total_exposure: NonNegativeMoney = Decimal(0)
    leverage: Decimal = Field(Decimal(0), ge=0, le=Decimal("9999.9999"))
    metadata: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """A stored portfolio snapshot; daily_pnl is against the previous UTC day's last
    snapshot (None for the first day)."""

    id: UUID
    strategy_id: UUID | None
    snapshot_time: datetime
    total_value: Decimal
    cash_balance: Decimal
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal | None
    positions: list[dict[str, Any]]
    open_orders_count: int | None
    total_exposure: Decimal | None
    leverage: Decimal | None
    daily_pnl: Decimal | None
    daily_pnl_percent: Decimal | None
    metadata: dict[str, Any] | None


INSERT = """
WITH prev AS (
    SELECT total_value FROM portfolio_snapshots
     WHERE {owner}
       AND snapshot_time < date_trunc('day', %(at)s::timestamptz AT TIME ZONE 'UTC')
                           AT TIME ZONE 'UTC'
     ORDER BY snapshot_time DESC LIMIT 1)
INSERT INTO portfolio_snapshots (strategy_id, snapshot_time, total_value, cash_balance,
    unrealized_pnl, realized_pnl, positions, open_orders_count, total_exposure, leverage,
    daily_pnl, daily_pnl_percent, metadata)
SELECT %(strategy_id)s, %(at)s, %(total_value)s, %(cash_balance)s, %(unrealized_pnl)s,
       %(realized_pnl)s, %(positions)s, %(open_orders_count)s, %(total_exposure)s,
       %(leverage)s,
       %(total_value)s - prev.total_value,
       CASE WHEN prev.total_value > 0 THEN greatest(-9999.9999, least(9999.9999,
            round((%(total_value)s - prev.total_value) / prev.total_value * 100, 4))) END,
       %(metadata)s
  FROM (SELECT 1) one LEFT JOIN prev ON true
RETURNING *
"""
LATEST = """
SELECT * FROM portfolio_snapshots WHERE {owner}
 ORDER BY snapshot_time DESC LIMIT 1
"""
RANGE = """
SELECT * FROM portfolio_snapshots WHERE {owner}
   AND snapshot_time >= %(start)s AND snapshot_time <= %(end)s ORDER BY snapshot_time
"""
EQUITY = """
SELECT snapshot_time, total_value::float8 AS total_value, cash_balance::float8 AS cash,
       coalesce(daily_pnl, 0)::float8 AS daily_pnl
  FROM portfolio_snapshots WHERE {owner}
   AND snapshot_time >= %(start)s AND snapshot_time <= %(end)s ORDER BY snapshot_time
"""


@dataclass(frozen=True)
class EquityCurve:
    timestamp: npt.NDArray[np.datetime64]
    total_value: npt.NDArray[np.float64]
    cash_balance: npt.NDArray[np.float64]
    daily_pnl: npt.NDArray[np.float64]


class PortfolioRepository:
    def __init__(self, db: Database, partitions: Callable[[], PartitionManager]) -> None:
        self.db = db
        self._partitions = partitions

    async def record(self, data: NewSnapshot | dict[str, Any]) -> Snapshot:
        snap = _parse(data)
        at = snap.snapshot_time or datetime.now(UTC)
        partitions: PartitionManager = self._partitions()
        await partitions.ensure("portfolio_snapshots", at, at)
        params = snap.model_dump(exclude={"positions", "metadata", "snapshot_time"})
        params.update(
            at=at,
            positions=Jsonb([p.model_dump(mode="json", exclude_none=True) for p in snap.positions]),
            metadata=Jsonb(snap.metadata),
        )
        row = await self.db.query_one(_owned(INSERT, snap.strategy_id), params)
        assert row is not None
        return Snapshot(**row)

    async def latest(self, strategy_id: UUID | None) -> Snapshot | None:
        row = await self.db.query_one(_owned(LATEST, strategy_id), {"strategy_id": strategy_id})
        return None if row is None else Snapshot(**row)

    async def range(
        self, strategy_id: UUID | None, start: datetime, end: datetime
    ) -> list[Snapshot]:
        params = {"strategy_id": strategy_id, "start": start, "end": end}
        return [Snapshot(**r) for r in await self.db.query(_owned(RANGE, strategy_id), params)]

    async def frame(self, strategy_id: UUID | None, start: datetime, end: datetime) -> Records:
        """The snapshots of [start, end], oldest first, as columns (positions and
        metadata as JSON text; see tradestore.frames)."""
        params = {"strategy_id": strategy_id, "start": start, "end": end}
        return await self.db.records(_owned(RANGE, strategy_id), params)

    async def equity_curve(
        self, strategy_id: UUID | None, start: datetime, end: datetime
    ) -> EquityCurve:
        params = {"strategy_id": strategy_id, "start": start, "end": end}
        rows = await self.db.query(_owned(EQUITY, strategy_id), params)
        stamps = np.array(
            [r["snapshot_time"].astimezone(UTC).replace(tzinfo=None) for r in rows],
            dtype="datetime64[us]",
        )
        return EquityCurve(
            stamps,
            np.array([r["total_value"] for r in rows], dtype=np.float64),
            np.array([r["cash"] for r in rows], dtype=np.float64),
            np.array([r["daily_pnl"] for r in rows], dtype=np.float64),
        )


def _owned(query: str, strategy_id: UUID | None) -> sql.Composed:
    """The query for one strategy's snapshots, or the account's (strategy_id NULL): an
    equality the (strategy_id, snapshot_time) index serves, where IS NOT DISTINCT FROM
    would not."""
    owner = "strategy_id IS NULL" if strategy_id is None else "strategy_id = %(strategy_id)s"
    return sql.SQL(query).format(owner=sql.SQL(owner))


def _parse(data: NewSnapshot | dict[str, Any]) -> NewSnapshot:
    if isinstance(data, dict) and not isinstance(data.get("positions", []), list):
        raise ValidationError(
            "positions must be a JSON array of position objects",
            field="positions",
            value=data.get("positions"),
        )
    return parse_input(NewSnapshot, data)
