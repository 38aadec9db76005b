"""The in-process L1: cachetools' time-aware LRU cache, a TTL per entry (never longer
than the cache's own) and a size bound (least recently used entries are evicted first)."""

from __future__ import annotations

import time
from typing import Any

from cachetools import TLRUCache

_MISSING = object()


def _expires(_key: str, entry: tuple[float, Any], now: float) -> float:
    return now + entry[0]


class LocalCache:
    def __init__(self, *, max_items: int, ttl_s: float) -> None:
        self.max_items = max_items
        self.ttl_s = ttl_s
        # entries are (ttl_s, value): the ttu function reads each entry's own TTL
        self._items: TLRUCache[str, tuple[float, Any]] = TLRUCache(
            maxsize=max_items, ttu=_expires, timer=time.monotonic
        )

    def get(self, key: str, default: Any = _MISSING) -> Any:
        entry = self._items.get(key)
        if entry is None:
            return None if default is _MISSING else default
        return entry[1]

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def set(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        self._items[key] = (min(ttl_s or self.ttl_s, self.ttl_s), value)

    def delete(self, key: str) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        self._items.expire()
        return len(self._items)
