"""A close computes its P&L in SQL (`trade_close_pnl`, migration 0026): it must equal the
definition in `trading.pnl.close_pnl` for every DECIMAL(18,8) input, ties, signs and the
percentage's clamp included."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore.trading.models import Side
from tradestore.trading.pnl import close_pnl

CLOSE_PNL = "SELECT pnl, pnl_percent FROM trade_close_pnl(%s, %s, %s, %s, %s)"


@pytest.fixture(scope="module")
def conn(migrated_db_url: str) -> Iterator[psycopg.Connection[tuple[Decimal, Decimal]]]:
    with psycopg.connect(migrated_db_url, autocommit=True) as connection:
        yield connection


def in_sql(
    conn: psycopg.Connection[tuple[Decimal, Decimal]],
    side: Side,
    entry: Decimal,
    exit_: Decimal,
    qty: Decimal,
    fees: Decimal,
) -> tuple[Decimal, Decimal]:
    row = conn.execute(CLOSE_PNL, (side.value, entry, exit_, qty, fees)).fetchone()
    assert row is not None
    return row[0], row[1]


def in_python(
    side: Side, entry: Decimal, exit_: Decimal, qty: Decimal, fees: Decimal
) -> tuple[Decimal, Decimal]:
    result = close_pnl(
        side=side,
        entry_price=entry,
        exit_price=exit_,
        quantity=qty,
        entry_fees=fees,
        exit_fees=Decimal(0),
    )
    return result.pnl, result.pnl_percent


@pytest.mark.parametrize(
    ("side", "qty", "pnl"),
    [
        (Side.BUY, "0.5", "0.00000000"),  # 0.000000005: half, to the even 0
        (Side.BUY, "1.5", "0.00000002"),  # 0.000000015: half, to the even 2
        (Side.BUY, "2.5", "0.00000002"),  # 0.000000025
        (Side.SELL, "0.5", "0.00000000"),
        (Side.SELL, "1.5", "-0.00000002"),
        (Side.SELL, "2.5", "-0.00000002"),
    ],
)
def test_ties_round_half_to_even_in_both(
    conn: psycopg.Connection[tuple[Decimal, Decimal]], side: Side, qty: str, pnl: str
) -> None:
    args = (side, Decimal(1), Decimal("1.00000001"), Decimal(qty), Decimal(0))
    assert in_sql(conn, *args)[0] == Decimal(pnl) == in_python(*args)[0]


def test_the_percentage_is_clamped_to_its_column(
    conn: psycopg.Connection[tuple[Decimal, Decimal]],
) -> None:
    args = (Side.BUY, Decimal("0.00000001"), Decimal(100), Decimal(1), Decimal(0))
    assert in_sql(conn, *args)[1] == Decimal("9999.9999") == in_python(*args)[1]
    short = (Side.SELL, Decimal("0.00000001"), Decimal(100), Decimal(1), Decimal(0))
    assert in_sql(conn, *short)[1] == Decimal("-9999.9999") == in_python(*short)[1]


money = st.decimals(min_value="0.00000001", max_value="9999999999.99999999", places=8)
small = st.decimals(min_value="0.00000001", max_value="10", places=8)


@settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from(Side),
    entry=st.one_of(money, small),
    exit_=st.one_of(money, small),
    qty=st.one_of(money, small),
    fees=st.one_of(st.just(Decimal(0)), money, small),
)
def test_sql_equals_the_python_definition(
    conn: psycopg.Connection[tuple[Decimal, Decimal]],
    side: Side,
    entry: Decimal,
    exit_: Decimal,
    qty: Decimal,
    fees: Decimal,
) -> None:
    args = (side, entry, exit_, qty, fees)
    assert in_sql(conn, *args) == in_python(*args)
