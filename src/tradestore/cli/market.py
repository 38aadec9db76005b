"""`tradestore market ...`: import, export, list and check market data."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradestore.cli.common import console, open_store, run
from tradestore.cli.formatting import parse_when, when
from tradestore.errors import ValidationError
from tradestore.marketdata.importers import open_source
from tradestore.marketdata.ingest import IngestResult
from tradestore.marketdata.validation import infer_timeframe
from tradestore.timeframes import Timeframe

app = typer.Typer(help="Market data: import, export, list, gaps, quality.", no_args_is_help=True)

SHOWN_ROWS_PER_REASON = 5


@app.command("list")
def list_series(symbol: str | None = typer.Option(None, help="Only this symbol.")) -> None:
    """What is stored: symbol, timeframe, first, last, count (from the catalog, no scan)."""

    async def main() -> None:
        async with open_store() as store:
            series = await store.market_data.list_series(symbol)
        table = Table("symbol", "timeframe", "first", "last", "candles", title="market data")
        for s in series:
            table.add_row(
                s["symbol"],
                s["timeframe"],
                when(s["first_ts"]),
                when(s["last_ts"]),
                f"{s['row_count']:,}",
            )
        console.print(table)

    run(main)


@app.command("import")
def import_file(
    path: Path = typer.Argument(..., help="CSV, zip, Parquet, feather or JSON file."),
    symbol: str | None = typer.Option(None, help="Symbol (default: from the file name)."),
    timeframe: str | None = typer.Option(None, help="Timeframe (default: from the file name)."),
    source: str = typer.Option("file", help="data_source stored with the candles."),
    strict: bool = typer.Option(False, help="Reject the whole file if any row is bad."),
) -> None:
    """Import candles from a file; the layout is detected from its content."""

    async def main() -> None:
        opened, tables = open_source(path)
        sym, tf = _series(opened.symbol, opened.timeframe, symbol, timeframe)
        if tf is None:
            tf, tables = infer_timeframe(tables)
            console.print(f"timeframe {tf.value}, from the spacing of the candles")
        console.print(f"{path.name}: {opened.format.value} layout, as {sym} {tf.value}")
        async with open_store() as store:
            with _bar() as bar:
                task = bar.add_task("importing", total=opened.size)

                def progress(rows: int, result: IngestResult) -> None:
                    bar.update(
                        task, completed=opened.bytes_read(), description=f"{rows:,} rows read"
                    )

                result = await store.market_data.store_candles(
                    sym,
                    tf,
                    tables,
                    source=source,
                    strict=strict,
                    atomic=strict,
                    on_progress=progress,
                )
                bar.update(task, completed=opened.size)
        for note in opened.notes:
            console.print(note)
        _summary(result, opened.header_lines)

    run(main)


@app.command("export")
def export(
    symbol: str,
    timeframe: str,
    out: Path = typer.Option(..., "--out", help="Destination .csv or .parquet file."),
    since: str | None = typer.Option(None, help="From (ISO; UTC if no zone)."),
    until: str | None = typer.Option(None, help="Up to (ISO; UTC if no zone)."),
) -> None:
    """Write candles to CSV or Parquet (exact decimals), month by month."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise typer.BadParameter("use a .csv or .parquet file name", param_hint="--out")

    async def main() -> None:
        async with open_store() as store:
            series = await store.market_data.list_series(symbol)
            match = [s for s in series if s["timeframe"] == Timeframe.parse(timeframe).value]
            if not match:
                raise ValidationError(f"nothing stored for {symbol} {timeframe}")
            start = parse_when(since, option="--since") or match[0]["first_ts"]
            # [since, until): by default through the last stored candle
            end = parse_when(until, option="--until") or match[0]["last_ts"] + timedelta(
                microseconds=1
            )
            writer = None
            written = 0
            with _bar() as bar:
                task = bar.add_task("exporting", total=max(1, int((end - start).total_seconds())))
                window_start = start
                while window_start < end:
                    window_end = min(window_start + timedelta(days=31), end)
                    frame = await store.market_data.get_historical_data(
                        symbol, timeframe, window_start, window_end, exact=True
                    )
                    window_start = window_end
                    if len(frame):
                        table = frame.to_arrow()
                        if writer is None:
                            writer = (
                                pq.ParquetWriter(out, table.schema)
                                if out.suffix.lower() == ".parquet"
                                else pacsv.CSVWriter(out, table.schema)
                            )
                        writer.write_table(table)
                        written += len(frame)
                    bar.update(task, completed=int((window_end - start).total_seconds()))
            if writer is not None:
                writer.close()
        console.print(f"wrote {written:,} candles to {out}")

    run(main)


SINCE_HELP = "From, inclusive (ISO; UTC if no zone; default: the first stored candle)."
UNTIL_HELP = "Up to, exclusive (ISO; UTC if no zone; default: after the last stored candle)."
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
) -> None:
    """List every run of missing candles (the whole stored range by default)."""
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")

    async def main() -> None:
        async with open_store() as store:
            quality = store.market_data.quality
            first, last = await quality.stored_range(symbol, timeframe)
            found = await quality.gaps(symbol, timeframe, start, end, calendar=calendar)
        table = Table(
            "first missing",
            "last missing",
            "candles",
            title=f"gaps in {symbol} {timeframe} from {when(start or first)} to "
            f"{when(end or last)} ({calendar})",
        )
        for g in found:
            table.add_row(when(g.start), when(g.end), f"{g.missing:,}")
        console.print(table)
        console.print(f"{len(found)} gap(s), {sum(g.missing for g in found):,} missing candles")

    run(main)


@app.command("quality")
def quality(
    symbol: str,
    timeframe: str,
    since: str | None = typer.Option(None, help=SINCE_HELP),
    until: str | None = typer.Option(None, help=UNTIL_HELP),
    calendar: str = typer.Option("24/7", help=CALENDAR_HELP),
    rescore: bool = typer.Option(False, help="Store the recomputed data_quality_score."),
) -> None:
    """Gaps, repeated candles, outliers and the average quality score."""
    start, end = parse_when(since, option="--since"), parse_when(until, option="--until")

    async def main() -> None:
        async with open_store() as store:
            checks = store.market_data.quality
            first, last = await checks.stored_range(symbol, timeframe)
            start_, end_ = start or first, end or last
            report = await checks.report(symbol, timeframe, start_, end_, calendar=calendar)
            changed = await checks.rescore(symbol, timeframe, start_, end_) if rescore else None
        table = Table("check", "result", title=f"quality of {symbol} {timeframe}")
        table.add_row("candles", f"{report.candles:,}")
        table.add_row("gaps", f"{len(report.gaps)} ({report.missing:,} candles missing)")
        table.add_row("repeated candles", str(len(report.repeated)))
        table.add_row("outliers", ", ".join(when(t) for t in report.outliers[:5]) or "none")
        table.add_row("empty candles", str(report.empty))
        table.add_row("average score", f"{report.average_score:.1f}")
        if changed is not None:
            table.add_row("scores updated", str(changed))
        console.print(table)

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
    table.add_row("updated", f"{result.updated:,}")
    table.add_row("unchanged", f"{result.unchanged:,}")
    table.add_row("rejected", f"{len(result.rejected):,}")
    console.print(table)
    by_reason: dict[str, list[int]] = {}
    for row in result.rejected:
        by_reason.setdefault(row.reason, []).append(row.index + 1 + header_lines)
    for reason, lines in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(map(str, lines[:SHOWN_ROWS_PER_REASON]))
        more = (
            f" and {len(lines) - SHOWN_ROWS_PER_REASON:,} more"
            if len(lines) > SHOWN_ROWS_PER_REASON
            else ""
        )
        console.print(f"  {len(lines):,} × {reason} (line {shown}{more})")
