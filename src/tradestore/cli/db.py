"""`tradestore db ...`: schema migrations."""

from __future__ import annotations

import typer

from tradestore.cli.common import console, open_store, run
from tradestore.cli.output import Format, format_option, note, print_rows

app = typer.Typer(help="Schema migrations.", no_args_is_help=True)


@app.command()
def migrate(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run; change nothing."),
) -> None:
    """Apply every pending migration (safe to run from several processes at once)."""

    async def main() -> None:
        async with open_store() as store:
            result = await store.migrate(dry_run=dry_run)
        verb = "would apply" if dry_run else "applied"
        if not result.applied:
            console.print(f"schema is up to date (time-series mode: {result.mode.value})")
            return
        for name in result.applied:
            console.print(f"{verb} {name}")
        console.print(f"time-series mode: {result.mode.value}")

    run(main)


@app.command()
def status(fmt: Format = format_option()) -> None:
    """Show applied and pending migrations and the time-series mode."""

    async def main() -> None:
        async with open_store() as store:
            st = await store.migration_status()
        rows = [
            {
                "migration": m.name,
                "state": f"applied ({m.variant})",
                "applied at": m.executed_at,
                "took (ms)": m.duration_ms,
            }
            for m in st.applied
        ] + [
            {"migration": name, "state": "pending", "applied at": None, "took (ms)": None}
            for name in st.pending
        ]
        print_rows(rows, fmt, title="migrations")
        mode = st.mode.value if st.mode else "not yet decided (nothing migrated)"
        note(f"time-series mode: {mode}", fmt)
        note(f"{len(st.applied)} applied, {len(st.pending)} pending", fmt)

    run(main)
