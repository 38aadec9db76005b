"""The `tradestore` command line. Each command group lives in its own module; app.py
puts them together. This module loads none of them: `main` does, so that a Ctrl-C while
they load is handled like one later."""

from __future__ import annotations

import sys


def main() -> None:
    """The console script: a tradestore error anywhere (also while parsing options,
    outside `run`) is one line and exit 1, never a traceback; Ctrl-C while the command
    line loads (about half a second) is exit 130, quietly too. Later, `run` handles it
    in a command, and click outside one."""
    try:
        from tradestore.cli.app import app
        from tradestore.cli.common import fail
        from tradestore.errors import TradeStoreError
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    try:
        app()
    except TradeStoreError as exc:
        fail(str(exc))
