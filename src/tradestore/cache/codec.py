"""Serialisation for cached values that keeps Decimal, datetime, date and UUID exact.

JSON with tagged objects: {"$d": "0.10000001"}, {"$t": "2024-01-01T00:00:00+00:00"},
{"$date": "2024-01-01"}, {"$u": "..."}. A key of the caller's data that starts with `$`
is stored with one more `$` (`$d` as `$$d`) and restored on reading, so user data can
never be taken for a tag. Pydantic models are stored as their field dict and rebuilt by
the caller. Never pickle: cache contents cross process boundaries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel


def _encode(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _encode(dict(value))
    if isinstance(value, Enum):
        return _encode(value.value)
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, UUID):
        return {"$u": str(value)}
    if isinstance(value, dict):
        return {_escape_key(str(k)): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot cache a {type(value).__name__}")


def _escape_key(key: str) -> str:
    return "$" + key if key.startswith("$") else key


_TAGS: dict[str, Callable[[str], Any]] = {
    "$d": Decimal,
    "$t": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$u": UUID,
}


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((tag, raw),) = obj.items()
        if tag in _TAGS:  # a user key never is one: it would have been escaped
            return _TAGS[tag](raw)
    return {key[1:] if key.startswith("$$") else key: v for key, v in obj.items()}


def dumps(value: Any) -> bytes:
    return json.dumps(_encode(value), separators=(",", ":")).encode()


def loads(raw: bytes | str) -> Any:
    return json.loads(raw, object_hook=_decode)
