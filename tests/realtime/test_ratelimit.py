"""Rate limits against real Redis: accuracy across processes, fallback when Redis dies."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid

import pytest

from tests.conftest import REDIS_URL, delete_keys
from tests.servers import RedisServer
from tradestore import ValidationError
from tradestore.keys import Keys
from tradestore.realtime.ratelimit import RateLimiter
from tradestore.redis_link import RedisLink
from tradestore.settings import Settings

RATE, BURST, SECONDS, TASKS = 50.0, 5.0, 3.0, 10

WORKER = """
import asyncio, sys, time
from tradestore.keys import Keys
from tradestore.realtime.ratelimit import RateLimiter
from tradestore.redis_link import RedisLink
from tradestore.settings import Settings

async def main(url, prefix, name, start, seconds, tasks):
    link = RedisLink(Settings(redis_url=url, redis_key_prefix=prefix, _env_file=None))
    await link.open()
    limit = RateLimiter(link, Keys(prefix)).token_bucket(name, rate=50.0, burst=5.0)
    await asyncio.sleep(max(0.0, start - time.time()))
    granted = 0
    async def worker():
        nonlocal granted
        while True:
            remaining = start + seconds - time.time()
            if remaining <= 0:
                return
            try:
                await limit.acquire(timeout_s=remaining)
            except TimeoutError:
                return
            if time.time() <= start + seconds:
                granted += 1
    await asyncio.gather(*(worker() for _ in range(tasks)))
    print(granted)
    await link.close()

url, prefix, name, start, seconds, tasks = sys.argv[1:]
asyncio.run(main(url, prefix, name, float(start), float(seconds), int(tasks)))
"""


def limiter(
    prefix: str, url: str = REDIS_URL, timeout_s: float = 1.0
) -> tuple[RateLimiter, RedisLink]:
    link = RedisLink(
        Settings(
            redis_url=url,
            redis_key_prefix=prefix,  # type: ignore[call-arg]
            redis_timeout_s=timeout_s,
            _env_file=None,
        )
    )
    return RateLimiter(link, Keys(prefix)), link


async def test_twenty_clients_in_two_processes_hold_the_rate_within_5_percent() -> None:
    prefix = f"tstest:{uuid.uuid4().hex[:8]}:"
    name = "exchange-key-1:/api/v3/order"
    start = time.time() + 2.0
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        REDIS_URL,
        prefix,
        name,
        str(start),
        str(SECONDS),
        str(TASKS),
        stdout=asyncio.subprocess.PIPE,
    )
    limits, link = limiter(prefix)
    await link.open()
    limit = limits.token_bucket(name, rate=RATE, burst=BURST)
    await asyncio.sleep(max(0.0, start - time.time()))
    granted = 0

    async def worker() -> None:
        nonlocal granted
        while (remaining := start + SECONDS - time.time()) > 0:
            try:
                await limit.acquire(timeout_s=remaining)
            except TimeoutError:
                return
            if time.time() <= start + SECONDS:
                granted += 1

    await asyncio.gather(*(worker() for _ in range(TASKS)))
    out_bytes, _ = await asyncio.wait_for(child.communicate(), timeout=30)
    out = out_bytes.decode().strip()
    total = granted + int(out)
    expected = BURST + RATE * SECONDS
    assert abs(total - expected) <= 0.05 * expected, (total, expected)
    assert granted > 0 and int(out) > 0  # both processes were served
    await link.close()
    delete_keys(prefix)


async def test_try_acquire_says_how_long_to_wait_and_sliding_window() -> None:
    prefix = f"tstest:{uuid.uuid4().hex[:8]}:"
    limits, link = limiter(prefix)
    await link.open()
    bucket = limits.token_bucket("b", rate=2, burst=2)
    assert (await bucket.try_acquire(2)).allowed
    denied = await bucket.try_acquire(1)
    assert not denied.allowed and 0 < denied.wait_s <= 0.5 and denied.shared
    window = limits.sliding_window("w", limit=3, window_s=1.0)
    results = [await window.try_acquire() for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert 0 < results[3].wait_s <= 1.0
    status = await limits.status("w")
    assert status["window_used"] == 3
    with pytest.raises(ValidationError):
        await bucket.try_acquire(3)  # more than the bucket can ever hold
    await link.close()
    delete_keys(prefix)


async def test_falls_back_to_in_process_limits_and_warns_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    limits, link = limiter("tstest:fallback:", url=redis_server.url, timeout_s=0.3)
    await link.open()
    bucket = limits.token_bucket("x", rate=1000, burst=3)
    assert (await bucket.try_acquire()).shared
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="tradestore"):
        local = [await bucket.try_acquire() for _ in range(5)]
    assert [d.allowed for d in local][:3] == [True, True, True]
    assert not any(d.shared for d in local)
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1
    await link.close()
