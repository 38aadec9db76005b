"""`tradestore events|sessions|ratelimit ...`: the Redis-backed services."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from tradestore.cli.common import console, open_store, run
from tradestore.cli.formatting import parse_when, when
from tradestore.realtime.bus import Event

events_app = typer.Typer(help="Notifications (outbox relayed to Redis).", no_args_is_help=True)
sessions_app = typer.Typer(help="User sessions.", no_args_is_help=True)
ratelimit_app = typer.Typer(help="Shared rate limits.", no_args_is_help=True)


def _print_event(event: Event) -> None:
    console.print(
        f"[dim]{when(event.created_at)}[/] [bold]{event.type}[/] "
        f"#{event.outbox_id} {json.dumps(event.payload, sort_keys=True)}",
        highlight=False,
        soft_wrap=True,
    )


@events_app.command("tail")
def tail(type_: list[str] = typer.Option(None, "--type", help="Only these event types.")) -> None:
    """Print events live as they are relayed (Ctrl-C to stop)."""

    async def main() -> None:
        async with open_store(relay=True) as store:
            console.print("listening for events (Ctrl-C to stop)…")
            async for event in store.events.subscribe(set(type_) if type_ else None):
                _print_event(event)

    run(main, until_interrupted=True)


@events_app.command("replay")
def replay(
    since: str = typer.Option(..., help="From (ISO; UTC if no zone)."),
    type_: list[str] = typer.Option(None, "--type", help="Only these event types."),
) -> None:
    """Print every event still in the stream since a time."""

    async def main() -> None:
        start = parse_when(since, option="--since")
        assert start is not None
        count = 0
        async with open_store() as store:
            async for event in store.events.replay(start, types=set(type_) if type_ else None):
                _print_event(event)
                count += 1
        console.print(f"{count} event(s)")

    run(main)


@events_app.command("relay")
def relay(poll_s: float = typer.Option(1.0, help="Poll interval besides NOTIFY.")) -> None:
    """Run an event relay in the foreground (several may run; they take turns)."""

    async def main() -> None:
        async with open_store() as store:
            console.print("relaying outbox events to Redis (Ctrl-C to stop)…")
            await store.events.run_relay(store._conninfo, poll_s=poll_s)

    run(main, until_interrupted=True)


@sessions_app.command("list")
def sessions_list(user: str) -> None:
    """A user's live sessions (ids are token hashes; tokens are never stored)."""

    async def main() -> None:
        async with open_store() as store:
            sessions = await store.sessions.of_user(user)
        table = Table(
            "session id", "created", "last seen", "ttl (s)", "data", title=f"sessions of {user}"
        )
        for s in sessions:
            table.add_row(
                s.id[:16] + "…",
                when(s.created_at),
                when(s.last_seen_at),
                str(s.ttl_s),
                json.dumps(s.data),
            )
        console.print(table)

    run(main)


@ratelimit_app.command("status")
def ratelimit_status(key: str) -> None:
    """What Redis holds for a rate-limit name."""

    async def main() -> None:
        async with open_store() as store:
            status = await store.rate_limiter.status(key)
        table = Table("field", "value", title=f"rate limit {key}")
        for field, value in status.items():
            table.add_row(field, "-" if value is None else str(value))
        console.print(table)

    run(main)
