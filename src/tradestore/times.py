"""The one time-zone rule: every time tradestore takes must say its zone (a naive time
is ambiguous: local to whom?)."""

from __future__ import annotations

from datetime import datetime

from tradestore.errors import ValidationError


def is_aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def require_aware(name: str, value: object) -> datetime:
    """value, when it is a datetime with a time zone; a ValidationError naming the
    field otherwise."""
    if not is_aware(value):
        shown = value.isoformat() if isinstance(value, datetime) else repr(value)
        raise ValidationError(
            f"{name} must be a datetime with a time zone (got {shown})", field=name, value=value
        )
    assert isinstance(value, datetime)
    return value


def optional_aware(name: str, value: datetime | None) -> datetime | None:
    return None if value is None else require_aware(name, value)
