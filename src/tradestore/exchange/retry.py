"""What every exchange source shares: the limiter it takes a token from before each
request, how it retries an answer that may be better next time, and what it counts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol


class Limiter(Protocol):
    async def acquire(self, cost: int = 1, *, timeout_s: float | None = None) -> Any: ...


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 30.0
    timeout_s: float = 20.0

    def pause(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter over its upper half."""
        return float(min(self.cap_s, self.base_s * 2**attempt) * random.uniform(0.5, 1.0))


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers


def retry_after_s(value: str | None, *, per_second: float = 1.0) -> float | None:
    """A Retry-After header as seconds to wait (`per_second` units of it make a second:
    1 for HTTP's seconds, 1000 for dYdX's milliseconds); None when absent or unreadable."""
    if value is None:
        return None
    try:
        return max(0.0, float(value) / per_second)
    except ValueError:
        return None
