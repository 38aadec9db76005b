"""`tradestore events|sessions|ratelimit ...`: the Redis-backed services."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from tradestore.cli.common import console, open_store, run
from tradestore.cli.formatting import parse_when, when
from tradestore.cli.output import Format, format_option, note, print_line, print_record, print_rows

if TYPE_CHECKING:
    from tradestore.realtime.bus import Event

events_app = typer.Typer(help="Notifications (outbox relayed to Redis).", no_args_is_help=True)
sessions_app = typer.Typer(help="User sessions.", no_args_is_help=True)
ratelimit_app = typer.Typer(help="Shared rate limits.", no_args_is_help=True)


def _print_event(event: Event, fmt: Format) -> None:
    record = {
        "created_at": event.created_at,
        "type": event.type,
        "outbox_id": event.outbox_id,
        "aggregate_id": event.aggregate_id,
        "payload": event.payload,
        "stream_id": event.stream_id,
    }
    text = (
        f"[dim]{when(event.created_at)}[/] [bold]{event.type}[/] "
        f"#{event.outbox_id} {json.dumps(event.payload, sort_keys=True)}"
    )
    print_line(record, fmt, text)


@events_app.command("tail")
def tail(
    type_: list[str] = typer.Option(None, "--type", help="Only these event types."),
    fmt: Format = format_option(),
) -> None:
    """Print events live as they are relayed (Ctrl-C to stop)."""

    async def main() -> None:
        async with open_store(relay=True) as store:
            note("listening for events (Ctrl-C to stop)…", fmt)
            async for event in store.events.subscribe(set(type_) if type_ else None):
                _print_event(event, fmt)

    run(main, until_interrupted=True)


@events_app.command("replay")
def replay(
    since: str = typer.Option(..., help="From (ISO, now, 7d, yesterday...)."),
    until: str | None = typer.Option(None, help="Up to, exclusive (same forms)."),
    type_: list[str] = typer.Option(None, "--type", help="Only these event types."),
    fmt: Format = format_option(),
) -> None:
    """Print every event still in the stream in [since, until)."""
    start = parse_when(since, option="--since")
    end = parse_when(until, option="--until")
    assert start is not None

    async def main() -> None:
        count = 0
        types = set(type_) if type_ else None
        async with open_store() as store:
            async for event in store.events.replay(start, end, types=types):
                _print_event(event, fmt)
                count += 1
        note(f"{count} event(s)", fmt)

    run(main)


@events_app.command("relay")
def relay(poll_s: float = typer.Option(1.0, help="Poll interval besides NOTIFY.")) -> None:
    """Run an event relay in the foreground (several may run; they take turns)."""

    async def main() -> None:
        async with open_store() as store:
            console.print("relaying outbox events to Redis (Ctrl-C to stop)…")
            await store.events.run_relay(store.direct_conninfo, poll_s=poll_s)

    run(main, until_interrupted=True)


@sessions_app.command("list")
def sessions_list(user: str, fmt: Format = format_option()) -> None:
    """A user's live sessions (ids are token hashes; tokens are never stored)."""

    async def main() -> None:
        async with open_store() as store:
            sessions = await store.sessions.of_user(user)
        rows = [
            {
                "session id": s.id,
                "created": s.created_at,
                "last seen": s.last_seen_at,
                "ttl (s)": s.ttl_s,
                "data": s.data,
            }
            for s in sessions
        ]
        print_rows(rows, fmt, title=f"sessions of {user}")

    run(main)


@ratelimit_app.command("status")
def ratelimit_status(key: str, fmt: Format = format_option()) -> None:
    """What Redis holds for a rate-limit name."""

    async def main() -> None:
        async with open_store() as store:
            status = await store.rate_limiter.status(key)
        print_record(status, fmt, title=f"rate limit {key}")

    run(main)
