"""Pure checks: validation messages and P&L maths (no server)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradestore import ValidationError
from tradestore.trading.models import NewOrder, NewStrategy, NewTrade, Side, parse_input
from tradestore.trading.pnl import close_pnl

BASE_ORDER = {
    "strategy_id": str(uuid.uuid4()),
    "symbol": "BTC-USD",
    "side": "BUY",
    "type": "MARKET",
    "quantity": "1",
}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("side", "HOLD", "side"),
        ("type", "ICEBERG", "type"),
        ("quantity", "0", "greater than 0"),
        ("quantity", "-1", "greater than 0"),
        ("quantity", "0.000000001", "more than 8 decimal places"),
        ("quantity", "12345678901", "too large"),
        ("quantity", "NaN", "finite"),
        ("symbol", "btc-usd", "upper case"),
        ("symbol", "BTC-USD'; DROP TABLE orders; --", "upper case"),
        ("time_in_force", "DAY", "time_in_force"),
        ("strategy_id", "not-a-uuid", "strategy_id"),
    ],
)
def test_bad_order_field_is_named(field: str, value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_input(NewOrder, {**BASE_ORDER, field: value})
    assert caught.value.field == field
    assert caught.value.value == value
    assert reason in str(caught.value) and field in str(caught.value)


def test_limit_order_needs_a_price_and_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="price is required"):
        parse_input(NewOrder, {**BASE_ORDER, "type": "LIMIT"})
    with pytest.raises(ValidationError, match="is not a known field") as caught:
        parse_input(NewOrder, {**BASE_ORDER, "status = 'FILLED' --": 1})
    assert caught.value.field == "status = 'FILLED' --"


@pytest.mark.parametrize(
    ("field", "value"),
    [("config", [1, 2]), ("symbols", []), ("timeframe", "2h"), ("name", "")],
)
def test_bad_strategy_field_is_named(field: str, value: object) -> None:
    data = {"name": "s", "version": "1", "config": {}, "timeframe": "1h", "symbols": ["ETH-USD"]}
    with pytest.raises(ValidationError) as caught:
        parse_input(NewStrategy, {**data, field: value})
    assert caught.value.field == field


def test_trade_filled_cannot_exceed_quantity() -> None:
    with pytest.raises(ValidationError, match="filled_quantity cannot exceed"):
        parse_input(
            NewTrade,
            {
                "strategy_id": str(uuid.uuid4()),
                "symbol": "BTC-USD",
                "side": "BUY",
                "entry_price": "1",
                "quantity": "1",
                "filled_quantity": "2",
            },
        )


def test_pnl_long_and_short_with_fees_counted_once() -> None:
    long = close_pnl(
        side=Side.BUY,
        entry_price=Decimal("100"),
        exit_price=Decimal("110"),
        quantity=Decimal("2"),
        entry_fees=Decimal("0.5"),
        exit_fees=Decimal("0.7"),
    )
    assert long.pnl == Decimal("18.8") and long.fees == Decimal("1.2")
    assert long.pnl_percent == Decimal("9.4000")
    short = close_pnl(
        side=Side.SELL,
        entry_price=Decimal("100"),
        exit_price=Decimal("110"),
        quantity=Decimal("2"),
        entry_fees=Decimal("0.5"),
        exit_fees=Decimal("0"),
    )
    assert short.pnl == Decimal("-20.5") and short.pnl_percent == Decimal("-10.2500")


def test_pnl_is_exact_where_floats_are_not() -> None:
    result = close_pnl(
        side=Side.BUY,
        entry_price=Decimal("0.1"),
        exit_price=Decimal("0.3"),
        quantity=Decimal("3"),
        entry_fees=Decimal(0),
        exit_fees=Decimal(0),
    )
    assert result.pnl == Decimal("0.6")  # (0.3 - 0.1) * 3 in float is 0.6000000000000001


def test_pnl_percent_is_clamped_to_the_column() -> None:
    result = close_pnl(
        side=Side.BUY,
        entry_price=Decimal("0.00000001"),
        exit_price=Decimal("100"),
        quantity=Decimal("1"),
        entry_fees=Decimal(0),
        exit_fees=Decimal(0),
    )
    assert result.pnl_percent == Decimal("9999.9999")


prices = st.decimals(min_value="0.00000001", max_value="100000", places=8)


@given(entry=prices, exit_=prices, qty=prices)
def test_long_and_short_pnl_are_opposites_without_fees(
    entry: Decimal, exit_: Decimal, qty: Decimal
) -> None:
    kw = {
        "entry_price": entry,
        "exit_price": exit_,
        "quantity": qty,
        "entry_fees": Decimal(0),
        "exit_fees": Decimal(0),
    }
    assert close_pnl(side=Side.BUY, **kw).pnl == -close_pnl(side=Side.SELL, **kw).pnl


def test_money_validators_are_built_once_not_per_call() -> None:
    from tradestore.trading.models import PositiveMoney, _money_adapter, parse_money

    parse_money("price", "1.5", PositiveMoney)
    built = _money_adapter.cache_info().misses
    for i in range(100):
        parse_money("price", f"{i + 1}.25", PositiveMoney)
    assert _money_adapter.cache_info().misses == built
