"""The `tradestore` command: its groups (each in its own module) put together."""

from __future__ import annotations

import json

import typer

# the command groups by their full names: `from tradestore.cli import …` would name the
# package, whose main() imports this module
import tradestore.cli.analytics as analytics
import tradestore.cli.db as db
import tradestore.cli.demo as demo
import tradestore.cli.exchange as exchange
import tradestore.cli.maintain as maintain
import tradestore.cli.market as market
import tradestore.cli.ops as ops
import tradestore.cli.realtime as realtime
import tradestore.cli.trading as trading
from tradestore.cli.common import console, open_store, run, setup_logging
from tradestore.cli.formatting import health_table

app = typer.Typer(
    help="tradestore: the persistence layer of an algorithmic trading platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(trading.strategies_app, name="strategies")
app.add_typer(trading.orders_app, name="orders")
app.add_typer(trading.trades_app, name="trades")
market.app.command("backfill")(exchange.backfill)
market.app.command("follow")(exchange.follow)
app.add_typer(market.app, name="market")
app.add_typer(realtime.events_app, name="events")
app.add_typer(realtime.sessions_app, name="sessions")
app.add_typer(realtime.ratelimit_app, name="ratelimit")
app.add_typer(ops.metrics_app, name="metrics")
app.add_typer(ops.logs_app, name="logs")
app.add_typer(ops.config_app, name="config")
app.command("status")(ops.status)
app.command("report")(analytics.report)
app.add_typer(analytics.backtests_app, name="backtests")
app.add_typer(maintain.app, name="maintain")
app.command("demo")(demo.demo)


def _print_version(asked: bool) -> None:
    if asked:
        from tradestore import __version__

        console.print(f"tradestore {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    setup_logging(verbose)


@app.command()
def health(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """PostgreSQL and Redis reachability and latency (exit 1 when PostgreSQL is down)."""

    async def main() -> bool:
        async with open_store() as store:
            result = await store.health()
        if as_json:
            console.print_json(json.dumps(result.to_dict()))
        else:
            console.print(health_table(result))
        return result.ok

    if not run(main):
        raise typer.Exit(1)
