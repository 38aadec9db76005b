"""The project's exceptions, grouped by what the caller does about them.

Every error carries a human message; the CLI prints that message and nothing else.
Driver errors are translated in one place (`tradestore.db.errors.translate`), by
SQLSTATE and constraint name, never by parsing message text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: a document by its type, anything cut at
    `limit` characters (a 10,000-character name or 50 MB of JSON is not echoed whole)."""
    text = type(value).__name__ if isinstance(value, dict | list) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


@dataclass(frozen=True)
class Diagnostics:
    """What PostgreSQL said about an error besides its message (psycopg's `diag`)."""

    sqlstate: str | None = None
    schema: str | None = None
    table: str | None = None
    column: str | None = None
    constraint: str | None = None
    detail: str | None = None
    hint: str | None = None


class TradeStoreError(Exception):
    """Base of every error tradestore raises on purpose.

    `sqlstate` is the PostgreSQL error code when the error was translated from one
    (e.g. "40P01" for a deadlock), else None; `diag` is the rest of what the server said
    (table, column, constraint, detail, hint), None when it was not a database error.
    The driver's own exception stays the `__cause__`.
    """

    sqlstate: str | None = None
    diag: Diagnostics | None = None


class ConfigurationError(TradeStoreError):
    """A setting is missing or malformed; fix the environment and start again."""


class ValidationError(TradeStoreError):
    """Input was rejected before it reached the database.

    `field` names the offending field, `value` is what was given, and the message
    says why it is wrong.
    """

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class NotFound(TradeStoreError):
    """The record asked for does not exist."""


class Conflict(TradeStoreError):
    """The write collides with existing state: a duplicate, a lost race, an illegal transition."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class ConstraintViolation(ValidationError):
    """The database rejected a row by a CHECK, NOT NULL or foreign-key constraint."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message, field=constraint)
        self.constraint = constraint


class TransientError(TradeStoreError):
    """Retrying may succeed: serialization failure, deadlock, lost connection, pool exhausted."""


class PoolExhausted(TransientError):
    """No connection became free within the connect timeout."""


class DatabaseUnavailable(TransientError):
    """PostgreSQL cannot be reached (down, restarting, or the network is away)."""


class ExchangeError(TradeStoreError):
    """An exchange or indexer refused a request (a bad ticker or resolution), or kept
    failing after every retry; the message says which and why."""


class MigrationError(TradeStoreError):
    """The schema could not be brought up to date, or its history does not match the files."""
