"""Strategies: create, read (cached), update by whitelist, activate, performance."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import TypeAdapter

from tradestore.cache.two_tier import TwoTierCache
from tradestore.db.database import Connection, Database
from tradestore.errors import Conflict, NotFound, ValidationError
from tradestore.realtime.events import EventType, append_event
from tradestore.times import optional_aware
from tradestore.trading.models import (
    NewStrategy,
    Strategy,
    StrategyChanges,
    StrategyPerformance,
    as_uuid,
    parse_input,
)

ACTIVE_KEY = "strategies:active"
# how a strategy and the active list sit in L2: pydantic JSON, read by compiled validators
STRATEGY_JSON = TypeAdapter(Strategy)
STRATEGIES_JSON = TypeAdapter(list[Strategy])

INSERT_STRATEGY = """
INSERT INTO strategies (name, version, description, author, config, timeframe, symbols,
                        is_active, is_paper_trading)
VALUES (%(name)s, %(version)s, %(description)s, %(author)s, %(config)s, %(timeframe)s,
        %(symbols)s, %(is_active)s, %(is_paper_trading)s)
RETURNING *
"""
SELECT_BY_ID = "SELECT * FROM strategies WHERE id = %s"
SELECT_BY_NAME = "SELECT * FROM strategies WHERE name = %s"
SELECT_ACTIVE = "SELECT * FROM strategies WHERE is_active ORDER BY created_at DESC"
SELECT_ALL = "SELECT * FROM strategies ORDER BY name"
DELETE_STRATEGY = "DELETE FROM strategies WHERE id = %s RETURNING id"
UPDATE_PERFORMANCE = """
UPDATE strategies
   SET total_trades = %(total_trades)s, winning_trades = %(winning_trades)s,
       total_pnl = %(total_pnl)s, max_drawdown = %(max_drawdown)s, updated_at = now()
 WHERE id = %(id)s
RETURNING *
"""
# The seed's summary; the range is on entry_time, bound as timestamptz (never naive).
PERFORMANCE = """
SELECT count(*)::int AS total_trades,
       count(*) FILTER (WHERE pnl > 0)::int AS winning_trades,
       coalesce(sum(pnl), 0) AS total_pnl,
       round(avg(pnl), 8) AS avg_pnl,
       round(stddev(pnl), 8) AS pnl_stddev,
       min(pnl) AS worst_trade,
       max(pnl) AS best_trade,
       round(avg(extract(epoch FROM exit_time - entry_time) / 60), 4) AS avg_duration_minutes
  FROM trades_with_archive
 WHERE strategy_id = %(id)s AND status = 'CLOSED'
   AND (%(date_from)s::timestamptz IS NULL OR entry_time >= %(date_from)s::timestamptz)
   AND (%(date_to)s::timestamptz IS NULL OR entry_time <= %(date_to)s::timestamptz)
"""

JSON_FIELDS = frozenset({"config"})


def to_strategy(row: dict[str, Any]) -> Strategy:
    return Strategy.model_validate(row)


def cache_key(strategy_id: UUID) -> str:
    return f"strategies:{strategy_id}"


class StrategyRepository:
    def __init__(self, db: Database, cache: TwoTierCache) -> None:
        self.db = db
        self.cache = cache

    async def create(self, data: NewStrategy | dict[str, Any]) -> Strategy:
        new = parse_input(NewStrategy, data)
        params = new.model_dump()
        params["config"] = Jsonb(new.config)
        params["timeframe"] = new.timeframe.value
        try:
            async with self.db.transaction() as conn:
                cur = await conn.execute(INSERT_STRATEGY, params)
                row = await cur.fetchone()
                assert row is not None
                strategy = to_strategy(row)
                await _event(conn, strategy, "created")
        except Conflict as exc:
            raise Conflict(
                f"a strategy named {new.name!r} already exists", constraint=exc.constraint
            ) from exc
        await self.cache.invalidate(ACTIVE_KEY)
        return strategy

    async def get(self, strategy_id: UUID) -> Strategy:
        """The strategy (cached); NotFound if there is none."""
        strategy_id = as_uuid(strategy_id)

        async def load() -> Strategy | None:
            row = await self.db.query_one(SELECT_BY_ID, (strategy_id,))
            return to_strategy(row) if row else None

        found = await self.cache.get_or_load(cache_key(strategy_id), load, adapter=STRATEGY_JSON)
        if found is None:
            raise NotFound(f"no strategy with id {strategy_id}")
        return found

    async def get_by_name(self, name: str) -> Strategy:
        row = await self.db.query_one(SELECT_BY_NAME, (name,))
        if row is None:
            raise NotFound(f"no strategy named {name!r}")
        return to_strategy(row)

    async def list_all(self) -> list[Strategy]:
        return [to_strategy(r) for r in await self.db.query(SELECT_ALL)]

    async def list_active(self) -> list[Strategy]:
        """Active strategies, newest first (cached, invalidated by every strategy write)."""

        async def load() -> list[Strategy]:
            return [to_strategy(r) for r in await self.db.query(SELECT_ACTIVE)]

        return await self.cache.get_or_load(ACTIVE_KEY, load, adapter=STRATEGIES_JSON)

    async def update(self, strategy_id: UUID, **changes: Any) -> Strategy:
        """Change known fields only (see StrategyChanges); `updated_at` is set."""
        strategy_id = as_uuid(strategy_id)
        parsed = parse_input(StrategyChanges, changes)
        values = parsed.model_dump(exclude_unset=True)
        if not values:
            raise ValidationError("nothing to update: give at least one field", field=None)
        assignments = [
            sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
            for name in values
        ]
        query = sql.SQL(
            "UPDATE strategies SET {}, updated_at = now() WHERE id = {} RETURNING *"
        ).format(sql.SQL(", ").join(assignments), sql.Placeholder("id"))
        params: dict[str, Any] = {
            k: (Jsonb(v) if k in JSON_FIELDS else v) for k, v in values.items()
        }
        if parsed.timeframe is not None:
            params["timeframe"] = parsed.timeframe.value
        params["id"] = strategy_id
        return await self._write_one(query, params, strategy_id, "updated")

    async def activate(self, strategy_id: UUID) -> Strategy:
        return await self.update(strategy_id, is_active=True)

    async def deactivate(self, strategy_id: UUID) -> Strategy:
        return await self.update(strategy_id, is_active=False)

    async def set_paper_trading(self, strategy_id: UUID, paper: bool) -> Strategy:
        return await self.update(strategy_id, is_paper_trading=paper)

    async def update_performance_metrics(
        self,
        strategy_id: UUID,
        *,
        total_trades: int,
        winning_trades: int,
        total_pnl: Any,
        max_drawdown: Any,
    ) -> Strategy:
        if not 0 <= winning_trades <= total_trades:
            raise ValidationError(
                f"winning_trades ({winning_trades}) must be between 0 and total_trades "
                f"({total_trades})",
                field="winning_trades",
                value=winning_trades,
            )
        params = {
            "id": as_uuid(strategy_id),
            "total_trades": total_trades,
            "winning_trades": winning_trades,
            "total_pnl": total_pnl,
            "max_drawdown": max_drawdown,
        }
        return await self._write_one(UPDATE_PERFORMANCE, params, params["id"], "performance")

    async def delete(self, strategy_id: UUID) -> bool:
        strategy_id = as_uuid(strategy_id)
        deleted = await self.db.query_one(DELETE_STRATEGY, (strategy_id,))
        await self.cache.invalidate(cache_key(strategy_id), ACTIVE_KEY)
        return deleted is not None

    async def performance(
        self,
        strategy_id: UUID,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
    ) -> StrategyPerformance:
        """The seed's summary of closed trades, optionally by entry time range."""
        optional_aware("date_from", date_from)
        optional_aware("date_to", date_to)
        row = await self.db.query_one(
            PERFORMANCE, {"id": as_uuid(strategy_id), "date_from": date_from, "date_to": date_to}
        )
        assert row is not None
        return StrategyPerformance.model_validate(row)

    async def _write_one(
        self, query: sql.Composable | str, params: dict[str, Any], strategy_id: UUID, what: str
    ) -> Strategy:
        async with self.db.transaction() as conn:
            cur = await conn.execute(query, params)  # type: ignore[arg-type]
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no strategy with id {strategy_id}")
            strategy = to_strategy(row)
            await _event(conn, strategy, what)
        await self.cache.invalidate(cache_key(strategy_id), ACTIVE_KEY)
        return strategy


async def _event(conn: Connection, strategy: Strategy, what: str) -> None:
    payload = {
        "change": what,
        "id": strategy.id,
        "name": strategy.name,
        "is_active": strategy.is_active,
    }
    await append_event(conn, EventType.STRATEGY_UPDATED, payload, aggregate_id=strategy.id)
