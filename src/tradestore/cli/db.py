"""`tradestore db ...`: schema migrations."""

from __future__ import annotations

import typer
from rich.table import Table

from tradestore.cli.common import console, open_store, run

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
def status() -> None:
    """Show applied and pending migrations and the time-series mode."""

    async def main() -> None:
        async with open_store() as store:
            st = await store.migration_status()
        table = Table("migration", "state", "applied at", "took")
        for m in st.applied:
            table.add_row(
                m.name,
                f"applied ({m.variant})",
                f"{m.executed_at:%Y-%m-%d %H:%M:%S%z}",
                f"{m.duration_ms} ms",
            )
        for name in st.pending:
            table.add_row(name, "[yellow]pending[/]", "", "")
        console.print(table)
        mode = st.mode.value if st.mode else "not yet decided (nothing migrated)"
        console.print(f"time-series mode: {mode}")
        console.print(f"{len(st.applied)} applied, {len(st.pending)} pending")

    run(main)
