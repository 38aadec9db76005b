"""Rate limits shared by every process: a token bucket and a sliding window, each one
atomic Lua script that reads Redis's own clock (so client clocks do not matter).

    limit = store.rate_limiter.token_bucket("binance:key1:/api/v3/order", rate=10, burst=20)
    await limit.acquire()                 # waits until allowed
    decision = await limit.try_acquire(5) # allowed? else decision.wait_s

With Redis unreachable, each process falls back to an in-process limiter of the same kind
(the limit then holds per process, not globally) and RedisLink warns once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from redis.commands.core import AsyncScript

from tradestore.errors import ValidationError
from tradestore.keys import Keys
from tradestore.redis_link import REDIS_ERRORS, RedisLink, end_if_cancelled

# KEYS[1] bucket; ARGV rate (tokens/s), capacity, cost. Returns {allowed, wait_s, tokens}.
TOKEN_BUCKET = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) + tonumber(now_t[2]) / 1000000
local rate, capacity, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed, wait = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(wait), tostring(tokens)}
"""

# KEYS[1] zset of grants (score = time); ARGV window_s, limit, cost, unique id.
SLIDING_WINDOW = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) + tonumber(now_t[2]) / 1000000
local window, limit, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used + cost <= limit then
  for i = 1, cost do
    redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return {1, '0', tostring(limit - used - cost)}
end
local oldest = redis.call('ZRANGE', KEYS[1], used + cost - limit - 1, used + cost - limit - 1,
                          'WITHSCORES')
local wait = (tonumber(oldest[2]) + window) - now
return {0, tostring(math.max(wait, 0.001)), tostring(limit - used)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    wait_s: float  # how long until `cost` would be allowed (0 when allowed)
    remaining: float  # tokens / slots left after this decision
    shared: bool  # True when decided by Redis (global), False by the local fallback


class Limit(Protocol):
    name: str

    async def try_acquire(self, cost: int = 1) -> Decision: ...

    async def acquire(self, cost: int = 1, *, timeout_s: float | None = None) -> Decision: ...


class _RedisLimit:
    script: str

    def __init__(self, link: RedisLink, key: str, name: str, args: tuple[float, float]) -> None:
        self.link = link
        self.key = key
        self.name = name
        self.args = args
        self.local = self._local()
        self._compiled: AsyncScript | None = None  # EVALSHA, loaded on first use

    def _local(self) -> _LocalLimit:
        raise NotImplementedError

    async def try_acquire(self, cost: int = 1) -> Decision:
        if cost < 1 or cost > self.args[1]:
            raise ValidationError(
                f"cost must be between 1 and {self.args[1]:g}", field="cost", value=cost
            )
        client = self.link.client
        if client is not None:
            try:
                if self._compiled is None or self._compiled.registered_client is not client:
                    self._compiled = client.register_script(self.script)
                reply = await self._compiled(
                    keys=[self.key], args=[*self.args, cost, *self._extra()]
                )
                self.link.recovered()
                return Decision(bool(int(reply[0])), float(reply[1]), float(reply[2]), True)
            except REDIS_ERRORS as exc:
                self.link.failed(exc)
        return self.local.decide(cost)

    async def acquire(self, cost: int = 1, *, timeout_s: float | None = None) -> Decision:
        """Wait until `cost` is allowed; a TimeoutError after timeout_s, if given."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            decision = await self.try_acquire(cost)
            end_if_cancelled()  # a waiter cancelled during the Redis call stops waiting
            if decision.allowed:
                return decision
            if deadline is not None and time.monotonic() + decision.wait_s > deadline:
                raise TimeoutError(f"rate limit {self.name}: not allowed within {timeout_s} s")
            await asyncio.sleep(decision.wait_s)

    def _extra(self) -> tuple[str, ...]:
        return ()


class TokenBucket(_RedisLimit):
    """`rate` tokens a second, holding at most `burst`; a call takes `cost` tokens."""

    script = TOKEN_BUCKET

    def _local(self) -> _LocalLimit:
        return _LocalBucket(*self.args)


class SlidingWindow(_RedisLimit):
    """At most `limit` grants in any `window_s` seconds (e.g. 1200 requests a minute)."""

    script = SLIDING_WINDOW

    def _local(self) -> _LocalLimit:
        return _LocalWindow(*self.args)

    def _extra(self) -> tuple[str, ...]:
        return (uuid.uuid4().hex,)


class _LocalLimit(Protocol):
    def decide(self, cost: int) -> Decision: ...


class _LocalBucket:
    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.ts = capacity, time.monotonic()

    def decide(self, cost: int) -> Decision:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.ts) * self.rate)
        self.ts = now
        if self.tokens >= cost:
            self.tokens -= cost
            return Decision(True, 0.0, self.tokens, False)
        return Decision(False, (cost - self.tokens) / self.rate, self.tokens, False)


class _LocalWindow:
    def __init__(self, window_s: float, limit: float) -> None:
        self.window_s, self.limit = window_s, int(limit)
        self.grants: deque[float] = deque()

    def decide(self, cost: int) -> Decision:
        now = time.monotonic()
        while self.grants and self.grants[0] <= now - self.window_s:
            self.grants.popleft()
        if len(self.grants) + cost <= self.limit:
            self.grants.extend([now] * cost)
            return Decision(True, 0.0, self.limit - len(self.grants), False)
        wait = self.grants[len(self.grants) + cost - self.limit - 1] + self.window_s - now
        return Decision(False, max(wait, 0.001), self.limit - len(self.grants), False)


class RateLimiter:
    """Builds named limits; the same name and kind means the same shared limit."""

    def __init__(self, link: RedisLink, keys: Keys) -> None:
        self.link = link
        self.keys = keys

    def token_bucket(self, name: str, *, rate: float, burst: float) -> TokenBucket:
        if rate <= 0 or burst < 1:
            raise ValidationError("rate must be > 0 and burst >= 1", field="rate", value=rate)
        return TokenBucket(self.link, self.keys.key("rl-bucket", name), name, (rate, burst))

    def sliding_window(self, name: str, *, limit: int, window_s: float) -> SlidingWindow:
        if limit < 1 or window_s <= 0:
            raise ValidationError("limit must be >= 1 and window_s > 0", field="limit", value=limit)
        # args are (window_s, limit): cost is checked against args[1] = limit
        return SlidingWindow(
            self.link, self.keys.key("rl-window", name), name, (window_s, float(limit))
        )

    async def status(self, name: str) -> dict[str, object]:
        """What Redis holds for a limit name (either kind), for `tradestore ratelimit`."""
        client = self.link.client
        if client is None:
            return {"name": name, "redis": "not configured"}
        bucket = await client.hgetall(self.keys.key("rl-bucket", name))
        window_key = self.keys.key("rl-window", name)
        used = await client.zcard(window_key)
        ttl = await client.pttl(window_key)
        return {
            "name": name,
            "bucket_tokens": float(bucket[b"tokens"]) if bucket else None,
            "window_used": int(used),
            "window_ttl_ms": int(ttl) if ttl and ttl > 0 else None,
        }
