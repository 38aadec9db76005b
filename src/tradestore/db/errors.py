"""Translate psycopg errors into tradestore errors, by class and SQLSTATE only."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg
from psycopg_pool import PoolTimeout

from tradestore.errors import (
    Conflict,
    ConstraintViolation,
    DatabaseUnavailable,
    Diagnostics,
    NotFound,
    PoolExhausted,
    TradeStoreError,
    TransientError,
    ValidationError,
)

_UNAVAILABLE = (pg.AdminShutdown, pg.CannotConnectNow, psycopg.OperationalError)


def translate(exc: BaseException) -> TradeStoreError:
    """The tradestore error for a driver error; the caller does `raise translate(e) from e`.
    The SQLSTATE and the server's diagnostics stay on it (`error.sqlstate`, `error.diag`)."""
    if isinstance(exc, TradeStoreError):
        return exc
    error = _translate(exc)
    error.sqlstate = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    if diag is not None:
        error.diag = Diagnostics(
            sqlstate=error.sqlstate,
            schema=diag.schema_name,
            table=diag.table_name,
            column=diag.column_name,
            constraint=diag.constraint_name,
            detail=diag.message_detail,
            hint=diag.message_hint,
        )
    return error


def _translate(exc: BaseException) -> TradeStoreError:
    if isinstance(exc, PoolTimeout):
        return PoolExhausted(
            "no database connection became free in time (pool exhausted): "
            "raise TRADESTORE_POOL_MAX_SIZE or find what holds connections"
        )
    constraint = _constraint(exc)
    table = _table(exc)
    if isinstance(exc, pg.UniqueViolation):
        return Conflict(
            f"duplicate value violates {constraint or 'a unique key'}", constraint=constraint
        )
    if isinstance(exc, pg.ExclusionViolation):
        return Conflict(
            f"row conflicts with {constraint or 'an exclusion constraint'}", constraint=constraint
        )
    if isinstance(exc, pg.CheckViolation):
        if constraint is None:  # e.g. "no partition of relation ... found for row"
            return ConstraintViolation(first_lines(exc))
        where = f" on {table}" if table else ""
        return ConstraintViolation(
            f"row violates check constraint {constraint}{where}", constraint=constraint
        )
    if isinstance(exc, pg.NotNullViolation):
        column = exc.diag.column_name
        return ConstraintViolation(
            f"{table or 'row'}.{column or '?'} must not be null", constraint=column
        )
    if isinstance(exc, pg.ForeignKeyViolation):
        # every foreign key of the schema cascades or sets null on delete (a schema test
        # keeps it so): a violation is always a row naming a record that does not exist
        detail = getattr(getattr(exc, "diag", None), "message_detail", None)
        return NotFound(
            f"referenced record does not exist ({constraint or 'foreign key'}"
            f"{': ' + detail if detail else ''})"
        )
    if isinstance(exc, pg.QueryCanceled):
        return TransientError("the statement was cancelled (statement timeout reached)")
    if isinstance(exc, pg.DeadlockDetected):
        return TransientError(f"deadlock detected, retry: {first_lines(exc)}")
    if isinstance(exc, pg.SerializationFailure):
        return TransientError(
            f"serialization failure (concurrent update), retry: {first_lines(exc)}"
        )
    if isinstance(exc, pg.LockNotAvailable):
        return TransientError(f"lock not available (lock timeout), retry: {first_lines(exc)}")
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"PostgreSQL unavailable, retry: {first_lines(exc)}")
    if isinstance(exc, pg.DataError):
        return ValidationError(f"value rejected by the database: {first_lines(exc)}")
    if isinstance(exc, psycopg.Error):
        return TradeStoreError(f"database error: {first_lines(exc)}")
    return TradeStoreError(str(exc))


def _constraint(exc: BaseException) -> str | None:
    diag = getattr(exc, "diag", None)
    return getattr(diag, "constraint_name", None)


def _table(exc: BaseException) -> str | None:
    diag = getattr(exc, "diag", None)
    return getattr(diag, "table_name", None)


def first_lines(exc: BaseException, count: int = 1) -> str:
    """The first `count` non-blank lines of a driver error's message, joined (the rest is
    context such as LINE/HINT); its type's name when it has none."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:count]) if lines else type(exc).__name__
