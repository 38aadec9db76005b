"""Backtests: PENDING -> RUNNING -> COMPLETED | FAILED, each step one conditional UPDATE
(an illegal transition is a Conflict naming both states). Summary fields live in the
seed's backtests row; the equity curve is stored as packed arrays in backtest_series
(migration 0008) and the seed's equity_curve JSONB holds a downsample for display, so
listing backtests never reads the large arrays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

import numpy as np
import numpy.typing as npt
from psycopg.types.json import Jsonb

from tradestore.db.database import Database
from tradestore.errors import Conflict, NotFound, ValidationError
from tradestore.frames import Records
from tradestore.timeframes import Timeframe
from tradestore.times import require_aware
from tradestore.trading.models import as_uuid, parse_enum

if TYPE_CHECKING:
    from tradestore.db.replicas import ReadRouter

DOWNSAMPLE_POINTS = 500
SUMMARY_COLUMNS = """
id, strategy_id, name, description, symbol, timeframe, start_date, end_date, initial_capital,
commission, slippage, total_return, annualized_return, volatility, max_drawdown, sharpe_ratio,
total_trades, winning_trades, win_rate, profit_factor, execution_time_ms,
data_points_processed, status, error_message, created_at, started_at, completed_at
"""
CREATE = f"""
INSERT INTO backtests (strategy_id, name, description, symbol, timeframe, start_date, end_date,
                       initial_capital, commission, slippage)
VALUES (%(strategy_id)s, %(name)s, %(description)s, %(symbol)s, %(timeframe)s, %(start)s,
        %(end)s, %(initial_capital)s, %(commission)s, %(slippage)s)
RETURNING {SUMMARY_COLUMNS}
"""  # noqa: S608 - a fixed column list
START = f"""
UPDATE backtests SET status = 'RUNNING', started_at = now()
 WHERE id = %s AND status = 'PENDING' RETURNING {SUMMARY_COLUMNS}
"""  # noqa: S608
FAIL = f"""
UPDATE backtests SET status = 'FAILED', error_message = %s, completed_at = now()
 WHERE id = %s AND status IN ('PENDING', 'RUNNING') RETURNING {SUMMARY_COLUMNS}
"""  # noqa: S608
COMPLETE = f"""
UPDATE backtests SET status = 'COMPLETED', completed_at = now(),
       total_return = %(total_return)s, annualized_return = %(annualized_return)s,
       volatility = %(volatility)s, max_drawdown = %(max_drawdown)s,
       sharpe_ratio = %(sharpe_ratio)s, total_trades = %(total_trades)s,
       winning_trades = %(winning_trades)s, win_rate = %(win_rate)s,
       profit_factor = %(profit_factor)s, detailed_results = %(detailed_results)s,
       equity_curve = %(equity_preview)s, trade_list = %(trade_list)s,
       execution_time_ms = %(execution_time_ms)s,
       data_points_processed = %(data_points_processed)s
 WHERE id = %(id)s AND status = 'RUNNING' RETURNING {SUMMARY_COLUMNS}
"""  # noqa: S608
SAVE_SERIES = """
INSERT INTO backtest_series (backtest_id, points, equity_time, equity_value)
VALUES (%s, %s, %s, %s)
ON CONFLICT (backtest_id) DO UPDATE SET points = EXCLUDED.points,
    equity_time = EXCLUDED.equity_time, equity_value = EXCLUDED.equity_value
"""
LOAD_SERIES = "SELECT points, equity_time, equity_value FROM backtest_series WHERE backtest_id = %s"
LIST = f"""
SELECT {SUMMARY_COLUMNS} FROM backtests
 WHERE (%(strategy_id)s::uuid IS NULL OR strategy_id = %(strategy_id)s)
   AND (%(symbol)s::text IS NULL OR symbol = %(symbol)s)
   AND (%(status)s::text IS NULL OR status = %(status)s)
 ORDER BY created_at DESC LIMIT %(limit)s
"""  # noqa: S608
# Served by the seed's partial index idx_backtests_performance.
BEST = f"""
SELECT {SUMMARY_COLUMNS} FROM backtests
 WHERE status = 'COMPLETED' AND symbol = %s AND timeframe = %s
 ORDER BY sharpe_ratio DESC NULLS LAST, total_return DESC NULLS LAST LIMIT %s
"""  # noqa: S608
GET = f"SELECT {SUMMARY_COLUMNS}, detailed_results, trade_list FROM backtests WHERE id = %s"  # noqa: S608
# a prefix of the id as `backtests list` prints it (git-style); two rows tell it is ambiguous
BY_PREFIX = "SELECT id FROM backtests WHERE id::text LIKE %s || '%%' ORDER BY id LIMIT 2"
MIN_PREFIX = 4


class BacktestStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Backtest:
    """A backtests row: what was run, its state, and its summary figures (None until it
    completes); `detailed_results` and `trade_list` only from `get`."""

    id: UUID
    strategy_id: UUID
    name: str
    description: str | None
    symbol: str
    timeframe: str
    start_date: datetime
    end_date: datetime
    initial_capital: Decimal
    commission: Decimal
    slippage: Decimal
    total_return: Decimal | None
    annualized_return: Decimal | None
    volatility: Decimal | None
    max_drawdown: Decimal | None
    sharpe_ratio: Decimal | None
    total_trades: int | None
    winning_trades: int | None
    win_rate: Decimal | None
    profit_factor: Decimal | None
    execution_time_ms: int | None
    data_points_processed: int | None
    status: str
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    detailed_results: dict[str, Any] | None = None
    trade_list: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class BacktestResults:
    total_return: float
    annualized_return: float
    volatility: float
    max_drawdown: float
    sharpe_ratio: float
    total_trades: int
    winning_trades: int
    win_rate: float
    profit_factor: float
    execution_time_ms: int
    data_points_processed: int
    detailed_results: dict[str, Any] | None = None
    trade_list: list[dict[str, Any]] | None = None


class BacktestRepository:
    def __init__(self, db: Database, *, reads: Database | ReadRouter | None = None) -> None:
        self.db = db
        self.reads = reads or db  # lists tolerate staleness: a replica

    async def create(
        self,
        strategy_id: UUID,
        *,
        name: str,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        initial_capital: Decimal | str,
        commission: Decimal | str = "0",
        slippage: Decimal | str = "0",
        description: str | None = None,
    ) -> Backtest:
        Timeframe.parse(timeframe)
        require_aware("start", start)
        if require_aware("end", end) <= start:
            raise ValidationError("end must come after start", field="end", value=end)
        if not name or len(name) > 200:
            raise ValidationError("name: 1 to 200 characters", field="name", value=name)
        row = await self.db.query_one(
            CREATE,
            {
                "strategy_id": as_uuid(strategy_id, field="strategy_id"),
                "name": name,
                "description": description,
                "symbol": symbol,
                "timeframe": timeframe,
                "start": start,
                "end": end,
                "initial_capital": Decimal(str(initial_capital)),
                "commission": Decimal(str(commission)),
                "slippage": Decimal(str(slippage)),
            },
        )
        assert row is not None
        return Backtest(**row)

    async def start(self, backtest_id: UUID) -> Backtest:
        return await self._transition(START, (as_uuid(backtest_id),), backtest_id, "RUNNING")

    async def fail(self, backtest_id: UUID, error_message: str) -> Backtest:
        return await self._transition(
            FAIL, (error_message, as_uuid(backtest_id)), backtest_id, "FAILED"
        )

    async def complete(
        self,
        backtest_id: UUID,
        results: BacktestResults,
        *,
        equity_time: npt.NDArray[Any],
        equity_value: npt.NDArray[Any],
    ) -> Backtest:
        times = np.asarray(equity_time).astype("datetime64[us]").astype("<i8")
        values = np.asarray(equity_value, dtype="<f8")
        if len(times) != len(values):
            raise ValidationError(
                "equity_time and equity_value differ in length",
                field="equity_value",
                value=len(values),
            )
        if not np.isfinite(values).all():
            raise ValidationError("equity_value has NaN or infinite values", field="equity_value")
        bid = as_uuid(backtest_id)
        params = {
            **results.__dict__,
            "id": bid,
            "detailed_results": Jsonb(results.detailed_results),
            "trade_list": Jsonb(results.trade_list),
            "equity_preview": Jsonb(_preview(times, values)),
        }
        for name in (
            "total_return",
            "annualized_return",
            "volatility",
            "max_drawdown",
            "sharpe_ratio",
            "win_rate",
            "profit_factor",
        ):
            params[name] = _fit4(params[name], 1.0 if name == "win_rate" else 9999.9999)
        async with self.db.transaction() as conn:
            cur = await conn.execute(COMPLETE, params)
            row = await cur.fetchone()
            if row is None:
                raise await self._illegal(bid, "COMPLETED")
            await conn.execute(SAVE_SERIES, (bid, len(times), times.tobytes(), values.tobytes()))
        return Backtest(**row)

    async def equity_curve(
        self, backtest_id: UUID
    ) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.float64]]:
        row = await self.db.query_one(LOAD_SERIES, (as_uuid(backtest_id),))
        if row is None:
            raise NotFound(f"backtest {backtest_id} has no stored equity curve")
        times = np.frombuffer(row["equity_time"], dtype="<i8").astype("datetime64[us]")
        return times, np.frombuffer(row["equity_value"], dtype="<f8")

    async def equity_frame(self, backtest_id: UUID) -> Records:
        """The stored equity curve as columns `time` (UTC) and `equity` (see
        tradestore.frames); the arrays themselves: `equity_curve`."""
        times, values = await self.equity_curve(backtest_id)
        return Records.of_columns({"time": times, "equity": values})

    async def get(self, backtest_id: UUID | str) -> Backtest:
        """One backtest, with its detailed results and trade list."""
        row = await self.db.query_one(GET, (as_uuid(backtest_id),))
        if row is None:
            raise NotFound(f"no backtest with id {backtest_id}")
        return Backtest(**row)

    async def resolve(self, id_or_prefix: UUID | str) -> UUID:
        """The id a full id or a unique prefix of one names (as git resolves commits):
        NotFound when none matches, ValidationError when several do."""
        if isinstance(id_or_prefix, UUID):
            return id_or_prefix
        text = id_or_prefix.strip().lower()
        try:
            return UUID(text)
        except ValueError:
            pass
        if len(text) < MIN_PREFIX or any(c not in "0123456789abcdef-" for c in text):
            raise ValidationError(
                f"backtest id: {id_or_prefix!r} is neither an id nor a prefix of one "
                f"(at least {MIN_PREFIX} hex digits)",
                field="backtest_id",
                value=id_or_prefix,
            )
        rows = await self.db.query(BY_PREFIX, (text,))
        if not rows:
            raise NotFound(f"no backtest id starts with {text}")
        if len(rows) > 1:
            raise ValidationError(
                f"backtest id prefix {text} is ambiguous: give more digits",
                field="backtest_id",
                value=id_or_prefix,
            )
        return UUID(str(rows[0]["id"]))

    async def find(
        self,
        *,
        strategy_id: UUID | None = None,
        symbol: str | None = None,
        status: BacktestStatus | str | None = None,
        limit: int = 50,
    ) -> list[Backtest]:
        """Backtests newest first; `status` in any case (completed, COMPLETED)."""
        if status is not None:
            status = parse_enum(BacktestStatus, status, field="status").value
        return [
            Backtest(**r)
            for r in await self.reads.query(
                LIST,
                {"strategy_id": strategy_id, "symbol": symbol, "status": status, "limit": limit},
            )
        ]

    async def best(self, symbol: str, timeframe: str, n: int = 10) -> list[Backtest]:
        """The best completed backtests of a symbol and timeframe, by Sharpe."""
        return [Backtest(**r) for r in await self.reads.query(BEST, (symbol, timeframe, n))]

    async def _transition(
        self, query: str, params: tuple[Any, ...], backtest_id: UUID, target: str
    ) -> Backtest:
        row = await self.db.query_one(query, params)
        if row is None:
            raise await self._illegal(as_uuid(backtest_id), target)
        return Backtest(**row)

    async def _illegal(self, backtest_id: UUID, target: str) -> Exception:
        current = await self.db.query_value(
            "SELECT status FROM backtests WHERE id = %s", (backtest_id,)
        )
        if current is None:
            return NotFound(f"no backtest with id {backtest_id}")
        return Conflict(f"backtest {backtest_id}: illegal transition {current} -> {target}")


def _preview(times: npt.NDArray[Any], values: npt.NDArray[Any]) -> list[list[Any]]:
    if len(times) == 0:
        return []
    idx = np.unique(np.linspace(0, len(times) - 1, min(len(times), DOWNSAMPLE_POINTS)).astype(int))
    return [
        [datetime.fromtimestamp(int(times[i]) / 1e6, UTC).isoformat(), float(values[i])]
        for i in idx
    ]


def _fit4(value: float, limit: float) -> Decimal:
    bounded = max(-limit, min(limit, float(value) if np.isfinite(value) else 0.0))
    return Decimal(repr(bounded)).quantize(Decimal("0.0001"))
