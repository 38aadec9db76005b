"""Supervised background loops: they survive transient failures and stop within a bound.

A `Supervised` runs one coroutine function (the loop's body) in a task. When the body
raises, the failure is logged once per outage (a warning, or at INFO for `NotReady`:
an expected wait such as a schema that is not migrated yet), the loop backs off
(capped exponential, with jitter) and runs the body again. The body calls `healthy()`
after each unit of work that succeeded; that ends the outage (logging the recovery)
and resets the backoff. `health()` says what the loop is doing, for `status`.

`stop()` never raises and returns within its bound whatever the body is doing: it sets
the stop flag, then cancels the task again and again until it ends. Cancelling once is
not enough, because some client libraries swallow a cancellation that arrives while
they wait (redis-py's pub/sub reader, psycopg's `notifies()`); a task that still has
not ended at the deadline is abandoned with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger(__name__)

CANCEL_RETRY_S = 0.05


class NotReady(Exception):
    """The loop cannot work yet for an expected reason (logged at INFO, retried)."""


@dataclass(frozen=True)
class LoopHealth:
    name: str
    state: str  # "running", "retrying", "stopped" or "finished"
    failures: int  # consecutive failures of the current outage (0 when healthy)
    last_error: str | None
    last_error_at: datetime | None

    @property
    def ok(self) -> bool:
        return self.state in ("running", "finished")


class Supervised:
    """One supervised background loop (see the module docstring)."""

    def __init__(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        *,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 3.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self._body = body
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._log = logger or log
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._failures = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._outage_level = logging.WARNING

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._supervise(), name=self.name)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called: bodies check it between units of work."""
        return self._stop.is_set()

    async def stop(self, timeout_s: float = 1.5) -> None:
        """End the loop within timeout_s; never raises."""
        task, self._task = self._task, None
        self._stop.set()
        if task is None or task.done():
            return
        deadline = time.monotonic() + timeout_s
        while not task.done() and time.monotonic() < deadline:
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_RETRY_S)
        if not task.done():
            self._log.warning("%s did not stop within %.1f s; abandoned", self.name, timeout_s)

    async def run_until_cancelled(self) -> None:
        """Start the loop and keep it until this call is cancelled (a CLI's main)."""
        self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def sleep(self, seconds: float) -> bool:
        """Sleep, waking early when stopped; True if the loop should go on."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    # --- health ---------------------------------------------------------------------------
    def healthy(self) -> None:
        """Called by the body after work that succeeded: the outage (if any) is over."""
        if self._failures:
            self._log.log(
                self._outage_level,
                "%s recovered after %d failed attempt(s)",
                self.name,
                self._failures,
            )
            self._failures = 0

    def health(self) -> LoopHealth:
        if self._task is None:
            state = "stopped"
        elif self._task.done():
            state = "finished"
        else:
            state = "retrying" if self._failures else "running"
        return LoopHealth(self.name, state, self._failures, self._last_error, self._last_error_at)

    # --- the loop -------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                await self._body()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._record_failure(exc)
            if not await self.sleep(self._backoff_s()):
                return

    def _record_failure(self, exc: Exception) -> None:
        self._failures += 1
        self._last_error = describe(exc)
        self._last_error_at = datetime.now(UTC)
        if self._failures == 1:
            self._outage_level = logging.INFO if isinstance(exc, NotReady) else logging.WARNING
            self._log.log(self._outage_level, "%s: %s; retrying", self.name, self._last_error)
        else:
            self._log.debug("%s: attempt %d failed: %s", self.name, self._failures, exc)

    def _backoff_s(self) -> float:
        ceiling = min(self._backoff_max_s, self._backoff_initial_s * 2.0 ** (self._failures - 1))
        return ceiling * random.uniform(0.5, 1.0)


def describe(exc: BaseException) -> str:
    """A one-line description of an error, for logs and health reports."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__
