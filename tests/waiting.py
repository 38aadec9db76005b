"""Waiting for something that happens in the background, with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], within_s: float, step_s: float = 0.02) -> float:
    """Poll condition until it holds or within_s passes; the seconds it took."""
    started = time.monotonic()
    deadline = started + within_s
    for _ in iter(int, 1):  # until a return
        if condition() or time.monotonic() >= deadline:
            return time.monotonic() - started
        await asyncio.sleep(step_s)
    raise AssertionError("unreachable")
