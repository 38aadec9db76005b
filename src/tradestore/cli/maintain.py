"""`tradestore maintain plan|run|schedule|export|import|compression`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tradestore.cli.common import console, fail, open_store, run
from tradestore.cli.formatting import parse_age, parse_when
from tradestore.cli.output import Format, format_option, print_rows

if TYPE_CHECKING:
    from tradestore.ops.tasks import Progress as Progress_

app = typer.Typer(
    help="Partitions, retention, archive, compression, rollups.", no_args_is_help=True
)


ARCHIVE_AFTER_HELP = (
    "Archive closed/cancelled trades finished longer ago than this (e.g. 730d, 52w); "
    "default: config archive.after_days, else 730d. Open trades never move."
)


@app.command("plan")
def plan(
    archive_after: str | None = typer.Option(None, "--archive-after", help=ARCHIVE_AFTER_HELP),
    fmt: Format = format_option(),
) -> None:
    """What `maintain run` would do now."""
    age = parse_age(archive_after, option="--archive-after")

    async def main() -> None:
        async with open_store() as store:
            actions = await store.maintenance.plan(archive_after=age)
        rows = [
            {"task": a.task, "action": a.action, "target": a.target, "detail": a.detail}
            for a in actions
        ]
        if not rows and fmt is Format.TABLE:
            rows = [{"task": "-", "action": "nothing to do", "target": "", "detail": ""}]
        columns = ["task", "action", "target", "detail"]
        print_rows(rows, fmt, title="maintenance plan", columns=columns)

    run(main)


@app.command("run")
def run_now(
    archive_after: str | None = typer.Option(None, "--archive-after", help=ARCHIVE_AFTER_HELP),
) -> None:
    """Do it: premake partitions, apply retention, archive trades, compress, refresh rollups."""
    age = parse_age(archive_after, option="--archive-after")

    async def main() -> None:
        async with open_store() as store:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
            ) as bar:

                def on_task(name: str) -> Progress_:
                    task = bar.add_task(name, total=None)
                    return lambda done, total: bar.update(task, completed=done, total=total)

                done = await store.maintenance.run(on_task=on_task, archive_after=age)
        for line in done or ["nothing to do"]:
            console.print(line)

    run(main)


@app.command("schedule")
def schedule(
    interval_s: float = typer.Option(3600, "--interval", help="Seconds between runs."),
) -> None:
    """Run maintenance every interval until interrupted (on TimescaleDB its policies,
    installed by the migrations, compress and drop old log chunks meanwhile)."""

    async def main() -> None:
        async with open_store(relay=True) as store:
            from tradestore.settings import TimeSeriesMode

            if store.timeseries_mode is TimeSeriesMode.TIMESCALE:
                jobs = await store.db.query(
                    "SELECT proc_name, hypertable_name, schedule_interval "
                    "FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"
                )
                for j in jobs:
                    console.print(
                        f"TimescaleDB policy: {j['proc_name']} on "
                        f"{j['hypertable_name']} every {j['schedule_interval']}"
                    )
            console.print(f"running maintenance every {interval_s:g} s (Ctrl-C to stop)")
            await store.maintenance.schedule(interval_s=interval_s, on_round=_print_lines)

    run(main, until_interrupted=True)


def _print_lines(lines: list[str]) -> None:
    for line in lines or ["nothing to do"]:
        console.print(line)


@app.command("export")
def export(
    partition: str | None = typer.Argument(
        None, help="A native partition or TimescaleDB chunk name (or give --since/--until)."
    ),
    since: str | None = typer.Option(None, help="Range start, inclusive (ISO date or time)."),
    until: str | None = typer.Option(None, help="Range end, exclusive (ISO date or time)."),
    directory: Path = typer.Option(Path("archive"), "--dir", help="Where the files go."),
    drop: bool = typer.Option(
        False, help="Drop the range once the export is verified (whole partitions/chunks)."
    ),
) -> None:
    """Export market_data of a time range [since, until) to Parquet with a manifest."""
    start = parse_when(since, option="--since")
    end = parse_when(until, option="--until")
    by_name = partition is not None and since is None and until is None
    by_range = partition is None and start is not None and end is not None
    if not (by_name or by_range):
        fail("give a partition/chunk name, or both --since and --until")

    from tradestore.ops.market_archive import ArchiveRange

    async def main() -> None:
        async with open_store() as store:
            archive = store.market_archive
            if partition is not None:
                span = await ArchiveRange.named(store.db, archive.mode, partition)
            else:
                assert start is not None and end is not None
                span = ArchiveRange.of(start, end)
            manifest = await archive.export(span, directory, drop_after=drop)
        console.print(
            f"exported {manifest.rows:,} rows of {span.start:%Y-%m-%d %H:%M} to "
            f"{span.end:%Y-%m-%d %H:%M} to {directory / manifest.file} "
            f"(sha256 {manifest.sha256[:12]}…)" + (", range dropped" if drop else "")
        )

    run(main)


@app.command("import")
def import_(manifest: Path) -> None:
    """Load an exported range back (checksum verified; existing candles are kept)."""

    async def main() -> None:
        async with open_store() as store:
            n = await store.market_archive.import_(manifest)
        console.print(f"imported {n:,} rows from {manifest}")

    run(main)


@app.command("compression")
def compression() -> None:
    """Compression state of market_data (TimescaleDB) and its ratio."""
    from tradestore.ops.compression import Compression
    from tradestore.settings import TimeSeriesMode

    async def main() -> None:
        async with open_store() as store:
            mode = store.timeseries_mode or TimeSeriesMode.NATIVE
            status = await Compression(store.db, mode).status()
        console.print(status.message)

    run(main)
