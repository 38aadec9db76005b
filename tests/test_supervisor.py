"""Supervised loops: retried after failures, healthy again after success, and stopped
within their bound even when the body swallows cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

import pytest

from tradestore.supervisor import NotReady, Supervised


async def test_a_failing_body_is_retried_logged_once_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = 0
    done = asyncio.Event()

    async def body() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 4:
            raise ConnectionError("server went away")
        loop.healthy()
        done.set()
        await asyncio.Event().wait()

    loop = Supervised("test loop", body, backoff_initial_s=0.01, backoff_max_s=0.02)
    with caplog.at_level(logging.DEBUG, logger="tradestore.supervisor"):
        loop.start()
        await asyncio.wait_for(done.wait(), 5)
        health = loop.health()
        await loop.stop()
    assert attempts == 5
    assert health.state == "running" and health.ok and health.failures == 0
    assert health.last_error == "server went away"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "test loop: server went away; retrying",
        "test loop recovered after 4 failed attempt(s)",
    ]
    assert loop.health().state == "stopped"


async def test_health_reports_retrying_while_the_outage_lasts() -> None:
    async def body() -> None:
        raise NotReady("schema not migrated")

    loop = Supervised("waiting loop", body, backoff_initial_s=0.01, backoff_max_s=0.02)
    loop.start()
    await asyncio.sleep(0.1)
    health = loop.health()
    await loop.stop()
    assert health.state == "retrying" and not health.ok
    assert health.failures >= 2 and health.last_error == "schema not migrated"


async def test_backoff_grows_and_is_capped() -> None:
    times: list[float] = []

    async def body() -> None:
        times.append(time.monotonic())
        raise RuntimeError("down")

    loop = Supervised("backoff", body, backoff_initial_s=0.02, backoff_max_s=0.08)
    loop.start()
    await asyncio.sleep(0.6)
    await loop.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 4
    assert gaps[0] < 0.05  # first retry soon: 0.01-0.02 s of jittered backoff
    assert all(gap < 0.08 + 0.05 for gap in gaps)  # never above the cap (plus scheduling)
    assert max(gaps[3:]) >= 0.04  # later retries wait longer (cap 0.08, jitter >= half)


async def test_stop_is_bounded_even_when_the_body_swallows_cancellation() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed >= 3:
                    raise

    loop = Supervised("stubborn", stubborn)
    loop.start()
    await asyncio.sleep(0.01)
    started = time.monotonic()
    await loop.stop(timeout_s=2.0)
    assert time.monotonic() - started < 1.0
    assert swallowed == 3 and not loop.running


async def test_stop_gives_up_on_a_body_that_never_ends_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def immortal() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    loop = Supervised("immortal", immortal)
    loop.start()
    await asyncio.sleep(0.01)
    started = time.monotonic()
    await loop.stop(timeout_s=0.3)
    assert time.monotonic() - started < 0.6
    assert "immortal did not stop within 0.3 s" in caplog.text
    release.set()  # let the abandoned task end so the test leaves nothing behind
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "immortal"]
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.done()


async def test_stop_never_raises_the_bodys_last_error() -> None:
    async def body() -> None:
        raise ValueError("old failure")

    loop = Supervised("failing", body, backoff_initial_s=0.01)
    loop.start()
    await asyncio.sleep(0.05)
    await loop.stop()  # no ValueError here
    assert loop.health().state == "stopped"
