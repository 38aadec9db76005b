"""What every CLI command shares: running async code, opening the store, printing errors."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, NoReturn, TypeVar

from rich.console import Console
from rich.logging import RichHandler

from tradestore.errors import TradeStoreError

if TYPE_CHECKING:
    from tradestore.store import TradeStore

T = TypeVar("T")

# piped or redirected output is never cut to 80 columns (ids and cursors stay whole)
console = Console(width=None if sys.stdout.isatty() else 100_000)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 100_000)


_VERBOSE = False


def setup_logging(verbose: bool = False) -> None:
    global _VERBOSE
    _VERBOSE = verbose
    # logs keep the terminal's width (a RichHandler fills its console's whole width)
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tradestore").setLevel(logging.INFO if verbose else logging.WARNING)
    # the pool logs every failed background reconnect; tradestore reports the cause itself
    logging.getLogger("psycopg.pool").setLevel(logging.INFO if verbose else logging.ERROR)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(code)


def run(main: Callable[[], Awaitable[T]], *, until_interrupted: bool = False) -> T:
    """Run a coroutine; a TradeStoreError becomes its message and exit status 1.

    Ctrl-C is "error: interrupted" and exit 130 where it cut work short; for a command
    that runs until interrupted (`until_interrupted`: tail, follow, serve) it is the
    normal way to stop, so it exits 0 quietly."""
    try:
        return asyncio.run(_call(main))
    except TradeStoreError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        if until_interrupted:
            sys.exit(0)
        fail("interrupted", code=130)
    except Exception as exc:  # a bug of ours: one line, the traceback only with -v
        if _VERBOSE:
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (run with -v for details)", code=2)


async def _call(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


@asynccontextmanager
async def open_store(*, relay: bool = False) -> AsyncIterator[TradeStore]:
    """The store from the environment. Quick commands do not relay outbox events (any
    long-running store does, see TRADESTORE_EVENT_RELAY); long-running ones pass relay.
    The store's modules are imported here, not at start: `--help` stays quick."""
    from tradestore.settings import load_settings
    from tradestore.store import TradeStore

    settings = load_settings()
    if not relay:
        settings = settings.model_copy(update={"event_relay": False})
    async with TradeStore(settings) as store:
        yield store
