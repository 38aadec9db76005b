"""`tradestore demo` (the demo itself lives in `tradestore.demo`)."""

from __future__ import annotations

from tradestore.cli.common import run


def demo() -> None:
    """Show the whole store working, in a database of its own (tradestore_demo) on the
    embedded PostgreSQL, or on DATABASE_URL's server when set."""
    from tradestore.demo import run_demo

    run(run_demo)
