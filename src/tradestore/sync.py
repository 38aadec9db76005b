"""A blocking facade for notebooks and scripts: `store = tradestore.connect()`.

The same store and repositories as the async API, each method blocking until its result
is there:

    from tradestore import connect
    store = connect()                        # settings from the environment
    frame = store.market_data.get_latest_candles("BTC-USD", "1m", 500)
    for event in store.events.replay(since):  # async iterators become plain iterators
        ...
    store.close()                            # or `with connect() as store:`

The real `TradeStore` runs on an event loop in a thread of its own, and every call is
handed to it; so `connect()` also works inside Jupyter, whose own loop is already
running in the main thread (no nest_asyncio). Objects without coroutine methods (rows,
frames, settings) are returned as they are.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tradestore.settings import Settings
    from tradestore.store import TradeStore

T = TypeVar("T")
CLOSE_TIMEOUT_S = 10.0


class _Loop:
    """An event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tradestore", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        if threading.current_thread() is self.thread:
            raise RuntimeError("a blocking tradestore call from inside its own event loop")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """The items of an async iterator, each fetched on the loop."""
        try:
            while True:
                try:
                    yield self.run(anext(iterator))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            closing = getattr(iterator, "aclose", None)
            if closing is not None and self.loop.is_running():
                self.run(closing())

    def stop(self) -> None:
        """Finish async generators, stop the loop and its thread, close the loop."""
        if self.loop.is_running():
            self.run(self.loop.shutdown_asyncgens(), timeout_s=CLOSE_TIMEOUT_S)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(CLOSE_TIMEOUT_S)
        if not self.thread.is_alive():
            self.loop.close()


class Blocking:
    """Wraps an object of the async API: its coroutine methods block, its async
    iterators become iterators, its service attributes are wrapped in turn."""

    def __init__(self, target: Any, loop: _Loop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return _blocking(getattr(self._target, name), self._loop)

    def __dir__(self) -> list[str]:
        return dir(self._target)

    def __repr__(self) -> str:
        return f"Blocking({self._target!r})"


def _blocking(value: Any, loop: _Loop) -> Any:
    if inspect.iscoroutine(value):
        return loop.run(value)
    if inspect.isasyncgen(value) or isinstance(value, AsyncIterator):
        return loop.iterate(value)
    if callable(value) and not isinstance(value, type):
        return _blocking_call(value, loop)
    if _is_service(value):
        return Blocking(value, loop)
    return value


def _blocking_call(function: Callable[..., Any], loop: _Loop) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _blocking(function(*args, **kwargs), loop)

    call.__name__ = getattr(function, "__name__", "call")
    call.__doc__ = getattr(function, "__doc__", None)
    return call


_SERVICES: dict[type, bool] = {}  # per class, decided once: notebooks access attributes often


def _is_service(value: Any) -> bool:
    """An object of tradestore's own with async methods (a repository, a service)."""
    kind = type(value)
    if kind not in _SERVICES:
        _SERVICES[kind] = kind.__module__.startswith("tradestore.") and any(
            inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
            for _, member in inspect.getmembers(kind, inspect.isfunction)
        )
    return _SERVICES[kind]


class SyncTradeStore(Blocking):
    """The TradeStore, blocking (see the module docstring). Close it, or use `with`."""

    def __init__(self, store: TradeStore, loop: _Loop) -> None:
        super().__init__(store, loop)
        self._closed = False
        atexit.register(self.close)

    @property
    def store(self) -> TradeStore:
        """The async store underneath (for code that runs on its loop)."""
        return self._target  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the store, then stop its loop; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._target.close(), timeout_s=CLOSE_TIMEOUT_S)
        finally:
            self._loop.stop()
            atexit.unregister(self.close)

    def __enter__(self) -> SyncTradeStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(settings: Settings | None = None, *, migrate: bool = False) -> SyncTradeStore:
    """An open, blocking store (settings from the environment by default); `migrate`
    brings the schema up to date first."""
    from tradestore.store import TradeStore

    loop = _Loop()
    store = TradeStore(settings)
    try:
        loop.run(store.open())
        if migrate:
            loop.run(store.migrate())
    except BaseException:
        try:
            loop.run(store.close(), timeout_s=CLOSE_TIMEOUT_S)
        finally:
            loop.stop()
        raise
    return SyncTradeStore(store, loop)
