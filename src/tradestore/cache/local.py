"""The in-process L1: a dict with a TTL per entry and a size bound (least recently used
entries are evicted first)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

_MISSING = object()


class LocalCache:
    def __init__(self, *, max_items: int, ttl_s: float) -> None:
        self.max_items = max_items
        self.ttl_s = ttl_s
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str, default: Any = _MISSING) -> Any:
        entry = self._items.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._items.pop(key, None)
            return None if default is _MISSING else default
        self._items.move_to_end(key)
        return entry[1]

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def set(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        expires = time.monotonic() + min(ttl_s or self.ttl_s, self.ttl_s)
        self._items[key] = (expires, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def delete(self, key: str) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
