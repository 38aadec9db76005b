"""Strategy, Order and Trade: the seed's fields, money as Decimal, closed sets as enums.

Input models (`NewStrategy`, `NewOrder`, `NewTrade`) validate what callers send;
`parse_input` turns pydantic's errors into a tradestore ValidationError that names the
field and the value. Row models (`Strategy`, `Order`, `Trade`) mirror the tables.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from uuid import UUID

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tradestore.errors import ValidationError, shown
from tradestore.symbols import RULE, is_symbol
from tradestore.timeframes import Timeframe
from tradestore.times import is_aware


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_LIMIT = "STOP_LIMIT"


class TradeType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PARTIAL_FILLED = "PARTIAL_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


class TradeStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


# --- field types ------------------------------------------------------------------------

MAX_NUMERIC_18_8 = Decimal("9999999999.99999999")


def _numeric_18_8(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8 and value != value.quantize(Decimal("1e-8")):
        raise ValueError("has more than 8 decimal places (NUMERIC(18,8) would round it)")
    if abs(value) > MAX_NUMERIC_18_8:
        raise ValueError("is too large for NUMERIC(18,8)")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _symbol(value: str) -> str:
    if not is_symbol(value):
        raise ValueError(f"must be a market symbol ({RULE})")
    return value


def _aware(value: datetime) -> datetime:
    if not is_aware(value):
        raise ValueError("must have a time zone (naive datetimes are ambiguous)")
    return value


Money = Annotated[Decimal, AfterValidator(_numeric_18_8)]
PositiveMoney = Annotated[Decimal, AfterValidator(_numeric_18_8), AfterValidator(_positive)]
NonNegativeMoney = Annotated[Decimal, AfterValidator(_numeric_18_8), AfterValidator(_non_negative)]
Symbol = Annotated[str, AfterValidator(_symbol)]


def _stored_timeframe(value: Timeframe) -> Timeframe:
    if value.is_calendar:
        raise ValueError(f"{value.value} is derived from daily candles: use 1m to 1d")
    return value


StrategyTimeframe = Annotated[Timeframe, AfterValidator(_stored_timeframe)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1 << 20


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    """JSON documents (config, metadata, signals) at most MAX_JSON_DEPTH levels deep and
    MAX_JSON_BYTES long: deeper ones break every reader (Python's json recurses), and
    huge ones every list. Depth is measured without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    size = len(json.dumps(value, default=str))
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{size:,} bytes as JSON (at most {MAX_JSON_BYTES:,})")
    return value


def check_json(value: dict[str, Any], *, field: str) -> dict[str, Any]:
    """_bounded_json for a plain argument: a tradestore ValidationError naming field."""
    try:
        return _bounded_json(value)
    except ValueError as exc:
        raise ValidationError(f"{field}: {exc}", field=field) from None


JsonInput = Annotated[dict[str, Any], AfterValidator(_bounded_json)]  # what callers send
JsonObject = dict[str, Any]  # what rows hold: read as stored, whatever wrote it

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True, use_enum_values=False)


# --- inputs -------------------------------------------------------------------------------


class NewStrategy(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, max_length=100)
    version: str = Field(min_length=1, max_length=20)
    description: str | None = None
    author: str | None = Field(None, max_length=100)
    config: JsonInput
    timeframe: StrategyTimeframe
    symbols: list[Symbol] = Field(min_length=1)
    is_active: bool = False
    is_paper_trading: bool = True


class NewOrder(BaseModel):
    model_config = _STRICT

    strategy_id: UUID
    symbol: Symbol
    side: Side
    type: OrderType
    quantity: PositiveMoney
    price: PositiveMoney | None = None
    stop_price: PositiveMoney | None = None
    client_order_id: str | None = Field(None, min_length=1, max_length=100)
    external_order_id: str | None = Field(None, min_length=1, max_length=100)
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    trade_id: UUID | None = None
    metadata: JsonInput = Field(default_factory=dict)

    @pydantic.model_validator(mode="after")
    def _prices_fit_the_type(self) -> NewOrder:
        if self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and self.price is None:
            raise ValueError(f"price is required for a {self.type.value} order")
        if self.type in (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.STOP_LIMIT) and (
            self.stop_price is None
        ):
            raise ValueError(f"stop_price is required for a {self.type.value} order")
        return self


class TradeAnnotations(BaseModel):
    """What a caller adds to a trade beyond its order's facts (fill_and_open's `trade`)."""

    model_config = _STRICT

    entry_signal: JsonInput | None = None
    entry_tag: str | None = Field(None, max_length=100)
    stop_loss_price: PositiveMoney | None = None
    take_profit_price: PositiveMoney | None = None
    metadata: JsonInput = Field(default_factory=dict)
    notes: str | None = None


class NewTrade(TradeAnnotations):
    strategy_id: UUID
    symbol: Symbol
    side: Side
    type: TradeType = TradeType.MARKET
    entry_price: PositiveMoney
    quantity: PositiveMoney
    filled_quantity: NonNegativeMoney | None = None  # default: the whole quantity
    entry_time: AwareDatetime | None = None  # default: now()
    fees: NonNegativeMoney = Decimal(0)
    external_order_id: str | None = Field(None, max_length=100)

    @pydantic.model_validator(mode="after")
    def _filled_within_quantity(self) -> NewTrade:
        if self.filled_quantity is not None and self.filled_quantity > self.quantity:
            raise ValueError("filled_quantity cannot exceed quantity")
        return self


class StrategyChanges(BaseModel):
    """The fields `update` may change; anything else is rejected before any SQL."""

    model_config = _STRICT

    version: str | None = Field(None, min_length=1, max_length=20)
    description: str | None = None
    author: str | None = Field(None, max_length=100)
    config: JsonInput | None = None
    timeframe: StrategyTimeframe | None = None
    symbols: list[Symbol] | None = Field(None, min_length=1)
    is_active: bool | None = None
    is_paper_trading: bool | None = None
    last_executed_at: AwareDatetime | None = None


# --- rows ----------------------------------------------------------------------------------


class Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Strategy(Row):
    id: UUID
    name: str
    version: str
    description: str | None
    author: str | None
    config: JsonObject
    timeframe: Timeframe
    symbols: list[str]
    is_active: bool
    is_paper_trading: bool
    total_trades: int
    winning_trades: int
    total_pnl: Decimal
    max_drawdown: Decimal
    created_at: datetime
    updated_at: datetime
    last_executed_at: datetime | None


class Order(Row):
    id: UUID
    trade_id: UUID | None
    strategy_id: UUID
    external_order_id: str | None
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    filled_quantity: Decimal
    remaining_quantity: Decimal | None
    status: OrderStatus
    time_in_force: TimeInForce
    reduce_only: bool
    created_at: datetime
    submitted_at: datetime | None
    filled_at: datetime | None
    cancelled_at: datetime | None
    avg_fill_price: Decimal | None
    fees: Decimal
    error_message: str | None
    retry_count: int
    metadata: JsonObject


class Trade(Row):
    id: UUID
    strategy_id: UUID
    external_order_id: str | None
    symbol: str
    side: Side
    type: TradeType
    entry_price: Decimal
    exit_price: Decimal | None
    quantity: Decimal
    filled_quantity: Decimal
    entry_time: datetime
    exit_time: datetime | None
    pnl: Decimal | None
    pnl_percent: Decimal | None
    fees: Decimal
    status: TradeStatus
    exit_reason: str | None
    entry_signal: JsonObject | None
    exit_signal: JsonObject | None
    entry_tag: str | None
    exit_tag: str | None
    stop_loss_price: Decimal | None
    take_profit_price: Decimal | None
    metadata: JsonObject
    notes: str | None
    created_at: datetime
    updated_at: datetime


class StrategyPerformance(Row):
    total_trades: int
    winning_trades: int
    total_pnl: Decimal
    avg_pnl: Decimal | None
    pnl_stddev: Decimal | None
    worst_trade: Decimal | None
    best_trade: Decimal | None
    avg_duration_minutes: Decimal | None


# --- validation --------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def parse_input(model: type[M], data: M | dict[str, Any]) -> M:
    """Validate caller input; a ValidationError names every bad field and value."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise ValidationError(
            f"expected a {model.__name__} or a dict, got {type(data).__name__}", value=data
        )
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from None


def from_pydantic(exc: pydantic.ValidationError) -> ValidationError:
    errors = exc.errors()
    parts = []
    for error in errors:
        field = ".".join(str(p) for p in error.get("loc", ())) or "input"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "is not a known field"
        parts.append(f"{field}: {message} (got {shown(error.get('input'))})")
    first_field = ".".join(str(p) for p in errors[0]["loc"]) if errors else None
    first_value = errors[0].get("input") if errors else None
    return ValidationError("; ".join(parts), field=first_field or None, value=first_value)


def as_uuid(value: Any, *, field: str = "id") -> UUID:
    """A UUID from a UUID or its text; a ValidationError naming the field otherwise."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise ValidationError(
            f"{field}: not a UUID (got {value!r})", field=field, value=value
        ) from None


@functools.cache
def _money_adapter(kind: Any) -> pydantic.TypeAdapter[Decimal]:
    """One validator per money type, built once (building one costs far more than using it)."""
    return pydantic.TypeAdapter(kind)


def parse_money(name: str, value: Any, kind: Any = Money) -> Decimal:
    """One money value checked like a model field (`Money`, `PositiveMoney`, ...)."""
    try:
        return _money_adapter(kind).validate_python(value)
    except pydantic.ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ValidationError(
            f"{name}: {reason} (got {value!r})", field=name, value=value
        ) from None


E = TypeVar("E", bound=StrEnum)


def parse_enum(kind: type[E], value: Any, *, field: str) -> E:
    """The member of `kind` for value (case-insensitive); a ValidationError otherwise."""
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).upper())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValidationError(
            f"{field}: unknown value {value!r} (allowed: {allowed})", field=field, value=value
        ) from None
