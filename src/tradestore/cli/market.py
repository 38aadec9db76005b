"""`tradestore market ...`: import, export, list and check market data."""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tradestore.cli.common import console, err_console, open_store, run
from tradestore.cli.formatting import parse_when, when
from tradestore.cli.output import Format, format_option, note, print_record, print_rows
from tradestore.errors import ValidationError
from tradestore.symbols import DEFAULT_VENUE
from tradestore.timeframes import Timeframe

if TYPE_CHECKING:
    from tradestore.marketdata.ingest import IngestResult

app = typer.Typer(help="Market data: import, export, list, gaps, quality.", no_args_is_help=True)

SHOWN_ROWS_PER_REASON = 5
VENUE_HELP = "The exchange the series is from (dydx, binance, ...): part of its identity."


@app.command("list")
def list_series(
    symbol: str | None = typer.Option(None, help="Only this symbol."),
    venue: str | None = typer.Option(None, help="Only this venue."),
    fmt: Format = format_option(),
) -> None:
    """What is stored: symbol, timeframe, first, last, count (from the catalog, no scan)."""

    async def main() -> None:
        async with open_store() as store:
            series = await store.market_data.list_series(symbol, venue=venue)
        rows = [
            {
                "venue": s.venue,
                "symbol": s.symbol,
                "timeframe": s.timeframe,
                "first": s.first_ts,
                "last": s.last_ts,
                "candles": s.row_count,
            }
            for s in series
        ]
        print_rows(rows, fmt, title="market data")

    run(main)


MARKET_SUFFIXES = (".csv", ".gz", ".zip", ".parquet", ".feather", ".json")


@app.command("import")
def import_files(
    paths: list[str] = typer.Argument(
        ..., help="Files, folders or globs (CSV, zip, Parquet, feather, JSON, .gz)."
    ),
    symbol: str | None = typer.Option(None, help="Symbol (default: from each file name)."),
    venue: str = typer.Option(DEFAULT_VENUE, help=VENUE_HELP),
    timeframe: str | None = typer.Option(
        None, help="Timeframe (default: from the file name, else the candles' spacing)."
    ),
    source: str = typer.Option("file", help="data_source stored with the candles."),
    strict: bool = typer.Option(False, help="Reject a whole file if any row is bad."),
) -> None:
    """Import candles from files; each layout is detected from its content."""
    files = expand_paths(paths)
    wanted = _Wanted(symbol, venue, timeframe, source, strict)

    async def main() -> bool:
        imported: list[tuple[Path, IngestResult, int]] = []
        failed: list[tuple[Path, str]] = []
        async with open_store() as store:
            with _bar() as bar:
                task = bar.add_task("importing", total=sum(f.stat().st_size for f in files))
                done = 0
                for path in files:
                    try:
                        result, header_lines = await _import_one(
                            store, path, wanted, bar, task, done
                        )
                        imported.append((path, result, header_lines))
                    except ValidationError as exc:
                        if len(files) == 1:
                            raise  # the one-line error, as for any command
                        failed.append((path, str(exc)))
                        console.print(f"[red]{path.name}: not imported:[/] {exc}")
                    done += path.stat().st_size
                    bar.update(task, completed=done)
        if len(files) == 1 and imported:
            _summary(*imported[0][1:])
        else:
            _summaries(imported, failed)
        return bool(failed)

    if run(main):
        raise typer.Exit(1)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files named, the market-data files of folders named, and the matches of globs;
    each once, in order."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if any(c in given for c in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(given))]
            if not matches:
                raise ValidationError(f"{given}: no file matches", field="path", value=given)
            found += [m for m in matches if m.is_file()]
        elif path.is_dir():
            found += sorted(
                f for f in path.iterdir() if f.is_file() and f.suffix.lower() in MARKET_SUFFIXES
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ValidationError(f"{given}: no such file or folder", field="path", value=given)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise ValidationError("no market-data files in " + ", ".join(paths), field="path")
    return unique


@dataclass(frozen=True)
class _Wanted:
    """What the import command was told (None: from each file)."""

    symbol: str | None
    venue: str
    timeframe: str | None
    source: str
    strict: bool


async def _import_one(
    store: Any, path: Path, wanted: _Wanted, bar: Progress, task: TaskID, done: int
) -> tuple[IngestResult, int]:
    from tradestore.marketdata.importers import open_source
    from tradestore.marketdata.validation import infer_timeframe

    opened, tables = open_source(path)
    sym, tf = _series(opened.symbol, opened.timeframe, wanted.symbol, wanted.timeframe)
    if tf is None:
        tf, tables = infer_timeframe(tables)
        console.print(f"{path.name}: timeframe {tf.value}, from the spacing of the candles")
    console.print(f"{path.name}: {opened.format.value} layout, as {wanted.venue} {sym} {tf.value}")

    def progress(rows: int, result: IngestResult) -> None:
        bar.update(task, completed=done + opened.bytes_read(), description=f"{rows:,} rows read")

    result = await store.market_data.store_candles(
        sym,
        tf,
        tables,
        venue=wanted.venue,
        source=wanted.source,
        strict=wanted.strict,
        atomic=wanted.strict,
        on_progress=progress,
    )
    for remark in opened.notes:
        console.print(f"{path.name}: {remark}")
    return result, opened.header_lines


def _summaries(
    imported: list[tuple[Path, IngestResult, int]], failed: list[tuple[Path, str]]
) -> None:
    table = Table("file", "series", "new", "updated", "unchanged", "rejected", title="imported")
    for path, r, _ in imported:
        table.add_row(
            path.name,
            f"{r.symbol} {r.timeframe.value}",
            f"{r.inserted:,}",
            f"{r.updated:,}",
            f"{r.unchanged:,}",
            f"{len(r.rejected):,}",
        )
    for path, _ in failed:
        table.add_row(path.name, "-", "-", "-", "-", "not imported")
    console.print(table)
    for path, r, header_lines in imported:
        for line in _reasons(r, header_lines):
            console.print(f"{path.name}: {line.strip()}")
    total = sum(r.stored for _, r, _ in imported)
    console.print(
        f"{len(imported)} file(s) imported, {len(failed)} failed, {total:,} candles stored"
    )


@app.command("export")
def export(
    symbol: str,
    timeframe: str,
    out: str = typer.Option(..., "--out", help="A .csv or .parquet file, or - for CSV on stdout."),
    since: str | None = typer.Option(None, help="From, inclusive (ISO; UTC if no zone)."),
    until: str | None = typer.Option(None, help="Up to, exclusive (ISO; UTC if no zone)."),
    to: str | None = typer.Option(
        None, "--timeframe", help="Resample to this timeframe on the way out (e.g. 1h, 1w)."
    ),
    venue: str = typer.Option(DEFAULT_VENUE, help=VENUE_HELP),
) -> None:
    """Write stored candles (TIMEFRAME) to CSV or Parquet, exact, month by month."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from tradestore.marketdata.resample import check_coarser

    to_stdout = out == "-"
    path = Path(out)
    if not to_stdout and path.suffix.lower() not in (".csv", ".parquet"):
        raise typer.BadParameter("use a .csv or .parquet file name, or -", param_hint="--out")
    stored_tf = Timeframe.parse_stored(timeframe)
    out_tf = Timeframe.parse(to, field="--timeframe") if to else stored_tf
    if out_tf is not stored_tf:
        check_coarser(stored_tf, out_tf)
    messages = err_console if to_stdout else console

    async def main() -> None:
        async with open_store() as store:
            md = store.market_data
            first, last = await md.quality.stored_range(symbol, stored_tf, venue=venue)
            start = parse_when(since, option="--since") or first
            end = parse_when(until, option="--until") or last
            writer: Any = None
            written = 0
            window_start = start
            while window_start < end:
                window_end = min(window_start + timedelta(days=31), end)
                frame = (
                    await md.resample(
                        symbol,
                        out_tf,
                        window_start,
                        window_end,
                        source=stored_tf,
                        exact=True,
                        venue=venue,
                    )
                    if out_tf is not stored_tf
                    else await md.get_historical_data(
                        symbol, stored_tf, window_start, window_end, exact=True, venue=venue
                    )
                )
                window_start = window_end
                if not len(frame):
                    continue
                table = frame.to_arrow()
                if writer is None:
                    target: Any = sys.stdout.buffer if to_stdout else path
                    writer = (
                        pq.ParquetWriter(target, table.schema)
                        if path.suffix.lower() == ".parquet" and not to_stdout
                        else pacsv.CSVWriter(target, table.schema)
                    )
                writer.write_table(table)
                written += len(frame)
            if writer is not None:
                writer.close()
        messages.print(
            f"wrote {written:,} {out_tf.value} candles to {'stdout' if to_stdout else out}"
        )

    run(main)


@app.command("delete")
def delete(
    symbol: str,
    timeframe: str,
    since: str | None = typer.Option(None, help="From, inclusive (default: the first candle)."),
    until: str | None = typer.Option(None, help="Up to, exclusive (default: after the last)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    venue: str = typer.Option(DEFAULT_VENUE, help=VENUE_HELP),
) -> None:
    """Delete a series' candles (all, or [since, until)); catalog and caches stay true."""
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")
    span = f"from {when(start)} " if start else ""
    span += f"until {when(end)}" if end else ""
    if not yes:
        typer.confirm(
            f"delete {venue} {symbol} {timeframe} candles {span or '(all of them)'}?", abort=True
        )

    async def main() -> None:
        async with open_store() as store:
            deleted = await store.market_data.delete(symbol, timeframe, start, end, venue=venue)
        console.print(f"deleted {deleted:,} {symbol} {timeframe} candles")

    run(main)


SINCE_HELP = "From, inclusive (ISO, 7d, yesterday...; default: the first stored candle)."
UNTIL_HELP = "Up to, exclusive (same forms; default: after the last stored candle)."
CALENDAR_HELP = (
    "Market hours that say which candles are expected: 24/7 (default), fx (closed Friday "
    "22:00 to Sunday 22:00 UTC) or an exchange code such as XNYS (tradestore[calendars])."
)


@app.command("gaps")
def gaps(
    symbol: str,
    timeframe: str,
    since: str | None = typer.Option(None, help=SINCE_HELP),
    until: str | None = typer.Option(None, help=UNTIL_HELP),
    calendar: str = typer.Option("24/7", help=CALENDAR_HELP),
    venue: str = typer.Option(DEFAULT_VENUE, help=VENUE_HELP),
    fmt: Format = format_option(),
) -> None:
    """List every run of missing candles (the whole stored range by default)."""
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")

    async def main() -> None:
        async with open_store() as store:
            quality = store.market_data.quality
            first, last = await quality.stored_range(symbol, timeframe, venue=venue)
            found = await quality.gaps(
                symbol, timeframe, start, end, calendar=calendar, venue=venue
            )
        rows = [
            {"first missing": g.start, "last missing": g.end, "candles": g.missing} for g in found
        ]
        title = (
            f"gaps in {symbol} {timeframe} from {when(start or first)} to "
            f"{when(end or last)} ({calendar})"
        )
        print_rows(rows, fmt, title=title, columns=["first missing", "last missing", "candles"])
        note(f"{len(found)} gap(s), {sum(g.missing for g in found):,} missing candles", fmt)

    run(main)


@app.command("quality")
def quality(
    symbol: str,
    timeframe: str,
    since: str | None = typer.Option(None, help=SINCE_HELP),
    until: str | None = typer.Option(None, help=UNTIL_HELP),
    calendar: str = typer.Option("24/7", help=CALENDAR_HELP),
    rescore: bool = typer.Option(False, help="Store the recomputed data_quality_score."),
    venue: str = typer.Option(DEFAULT_VENUE, help=VENUE_HELP),
    fmt: Format = format_option(),
) -> None:
    """Gaps, repeated candles, outliers and the average quality score."""
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")

    async def main() -> None:
        async with open_store() as store:
            checks = store.market_data.quality
            report = await checks.report(
                symbol, timeframe, start, end, calendar=calendar, venue=venue
            )
            changed = (
                await checks.rescore(symbol, timeframe, report.since, report.until, venue=venue)
                if rescore
                else None
            )
        record: dict[str, Any] = {
            "since": report.since,
            "until": report.until,
            "candles": report.candles,
            "gaps": len(report.gaps),
            "missing candles": report.missing,
            "repeated candles": len(report.repeated),
            "outliers": report.outliers[:5] if fmt is Format.TABLE else report.outliers,
            "empty candles": report.empty,
            "average score": round(report.average_score, 1),
        }
        if changed is not None:
            record["scores updated"] = changed
        print_record(record, fmt, title=f"quality of {symbol} {timeframe}")

    run(main)


def _series(
    file_symbol: str | None, file_tf: str | None, symbol: str | None, timeframe: str | None
) -> tuple[str, Timeframe | None]:
    chosen_symbol = symbol or file_symbol
    chosen_tf = timeframe or file_tf
    if chosen_symbol is None:
        raise ValidationError("give --symbol (the file name does not say)")
    if symbol and file_symbol and symbol != file_symbol:
        console.print(f"[yellow]note:[/] the file name suggests {file_symbol}; using {symbol}")
    if timeframe and file_tf and timeframe != file_tf:
        console.print(f"[yellow]warning:[/] the file name says {file_tf}; using {timeframe}")
    return chosen_symbol, Timeframe.parse(chosen_tf) if chosen_tf else None


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _summary(result: IngestResult, header_lines: int) -> None:
    table = Table("", "candles", title=f"imported {result.symbol} {result.timeframe.value}")
    table.add_row("stored (new)", f"{result.inserted:,}")
    if result.packed:
        table.add_row("  in blocks", f"{result.packed:,}")  # of the new: packed at once
    table.add_row("updated", f"{result.updated:,}")
    table.add_row("unchanged", f"{result.unchanged:,}")
    table.add_row("rejected", f"{len(result.rejected):,}")
    console.print(table)
    for line in _reasons(result, header_lines):
        console.print(line)


def _reasons(result: IngestResult, header_lines: int) -> list[str]:
    """One line per rejection reason: how many rows, and the first few file lines."""
    by_reason: dict[str, list[int]] = {}
    for row in result.rejected:
        by_reason.setdefault(row.reason, []).append(row.index + 1 + header_lines)
    lines = []
    for reason, numbers in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(map(str, numbers[:SHOWN_ROWS_PER_REASON]))
        more = (
            f" and {len(numbers) - SHOWN_ROWS_PER_REASON:,} more"
            if len(numbers) > SHOWN_ROWS_PER_REASON
            else ""
        )
        lines.append(f"  {len(numbers):,} × {reason} (line {shown}{more})")
    return lines
