"""Streaming readers, one per layout: each yields Arrow tables of at most a batch of rows
with columns timestamp, open, high, low, close, volume [, trades_count, vwap]."""

from __future__ import annotations

import gzip
import json
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from tradestore.errors import ValidationError
from tradestore.marketdata.importers.detect import (
    BATCH_BYTES,
    BATCH_ROWS,
    BINANCE_COLUMNS,
    FileFormat,
    Source,
    detect,
    gzip_stream,
    open_text_member,
    suggest_series,
    verify_binance_checksum,
)

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
COMBINED_ROWS = 100_000
TIME_ALIASES = ("timestamp", "date", "time", "datetime", "open_time")


# what a broken file makes the parsers raise, and what to tell the user about it
UNREADABLE: tuple[tuple[type[BaseException], str], ...] = (
    (zipfile.BadZipFile, "not a readable zip archive"),
    (gzip.BadGzipFile, "not a readable gzip file"),
    (EOFError, "the compressed file is cut short"),
    (json.JSONDecodeError, "not valid JSON"),
    (UnicodeDecodeError, "not UTF-8 text"),
    (RecursionError, "JSON nested too deeply"),
    (pa.ArrowInvalid, "not a readable file of this layout"),
    (OSError, "cannot be read"),
)


def stream(source: Source, *, batch_rows: int) -> Iterator[pa.Table]:
    """The file's candles as Arrow tables; a broken file is one clear ValidationError."""
    try:
        yield from _stream(source, batch_rows)
    except ValidationError:
        raise
    except tuple(kind for kind, _ in UNREADABLE) as exc:
        what = next(text for kind, text in UNREADABLE if isinstance(exc, kind))
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ValidationError(
            f"{source.path}: {what}" + (f" ({detail})" if detail else ""),
            field="path",
            value=str(source.path),
        ) from None


def _stream(source: Source, batch_rows: int) -> Iterator[pa.Table]:
    fmt = source.format
    if fmt in (FileFormat.BINANCE_CSV, FileFormat.BINANCE_ZIP):
        yield from _binance(source)
    elif fmt in (FileFormat.PLAIN_CSV, FileFormat.CSV_GZ):
        yield from _plain_csv(source)
    elif fmt is FileFormat.PARQUET:
        yield from _parquet(source, batch_rows)
    elif fmt is FileFormat.FEATHER:
        yield from _feather(source)
    else:
        yield from _json_list(source, batch_rows)


# --- CSV -----------------------------------------------------------------------------------


def _binance(source: Source) -> Iterator[pa.Table]:
    with ExitStack() as files:
        if source.format is FileFormat.BINANCE_ZIP:
            note = verify_binance_checksum(source.path)
            if note:
                source.notes.append(note)
            member, position = open_text_member(source.path)
            raw: Any = files.enter_context(member)
            source._position = position
        else:
            # a native Arrow file: given a Python file object, Arrow reads it all at once
            native = files.enter_context(pa.OSFile(str(source.path), "rb"))
            raw = native
            source._position = native.tell
        has_header = not _peek_first_byte(source).isdigit()
        source.header_lines = 1 if has_header else 0
        read = pacsv.ReadOptions(
            column_names=BINANCE_COLUMNS, block_size=BATCH_BYTES, skip_rows=source.header_lines
        )
        convert = pacsv.ConvertOptions(
            column_types={
                "open_time": pa.int64(),
                "count": pa.int64(),
                **{c: pa.string() for c in (*PRICE_COLUMNS, "quote_volume")},
            },
            include_columns=["open_time", *PRICE_COLUMNS, "quote_volume", "count"],
        )
        for table in _combined(pacsv.open_csv(raw, read_options=read, convert_options=convert)):
            yield _binance_table(table)


def _binance_table(table: pa.Table) -> pa.Table:
    prices = {c: _exact(table.column(c)) for c in PRICE_COLUMNS}
    volume = pc.cast(table.column("volume"), pa.float64(), safe=False)
    quote = pc.cast(table.column("quote_volume"), pa.float64(), safe=False)
    vwap = pc.if_else(pc.greater(volume, 0), pc.divide(quote, volume), None)
    return pa.table(
        {
            "timestamp": table.column("open_time"),
            **prices,
            "trades_count": table.column("count"),
            "vwap": vwap,
        }
    )


def _plain_csv(source: Source) -> Iterator[pa.Table]:
    gz = source.format is FileFormat.CSV_GZ
    with gzip.open(source.path, "rb") if gz else source.path.open("rb") as f:
        header = f.readline().decode("utf-8", "replace")
        if not f.read(1).strip():
            raise ValidationError(
                f"{source.path}: a header and no candles", field="path", value=str(source.path)
            )
    names = [c.strip().strip('"') for c in header.strip().split(",")]
    types = {n: pa.string() for n in names if n.lower() in PRICE_COLUMNS}
    source.header_lines = 1
    with pa.OSFile(str(source.path), "rb") as native:
        source._position = native.tell
        raw = pa.CompressedInputStream(native, "gzip") if gz else native
        read = pacsv.ReadOptions(block_size=BATCH_BYTES)
        convert = pacsv.ConvertOptions(column_types=types)
        for table in _combined(pacsv.open_csv(raw, read_options=read, convert_options=convert)):
            yield _standard(source, {n.lower(): table.column(n) for n in table.column_names})


def _peek_first_byte(source: Source) -> str:
    if source.format is FileFormat.BINANCE_ZIP:
        member, _ = open_text_member(source.path)
        with member:
            return member.read(1).decode("ascii", "replace")
    with source.path.open("rb") as f:
        return f.read(1).decode("ascii", "replace")


# --- columnar files -------------------------------------------------------------------------


def _parquet(source: Source, batch_rows: int) -> Iterator[pa.Table]:
    file = pq.ParquetFile(source.path)
    done = 0
    total_rows = max(file.metadata.num_rows, 1)
    source._position = lambda: source.size * done // total_rows
    for batch in file.iter_batches(batch_size=batch_rows):
        done += batch.num_rows
        table = pa.Table.from_batches([batch])
        yield _standard(source, {n.lower(): table.column(n) for n in table.column_names})


def _feather(source: Source) -> Iterator[pa.Table]:
    with pa.memory_map(str(source.path)) as mapped:
        reader = ipc.open_file(mapped)
        done = 0
        source._position = lambda: source.size * done // max(reader.num_record_batches, 1)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            done = i + 1
            table = pa.Table.from_batches([batch])
            yield _standard(source, {n.lower(): table.column(n) for n in table.column_names})


def _json_list(source: Source, batch_rows: int) -> Iterator[pa.Table]:
    """freqtrade json/jsongz and CCXT fetch_ohlcv: [[ms, o, h, l, c, v], ...].

    These files are read whole (json has no streaming parser in the standard library);
    freqtrade and CCXT write them per pair and timeframe, so they stay modest."""
    if source.format is FileFormat.JSON_GZ:
        stream_, position = gzip_stream(source.path)
        source._position = position
        with stream_:
            data = json.load(stream_)
    else:
        with source.path.open("rb") as f:
            data = json.load(f)
        source._position = lambda: source.size
    if not isinstance(data, list) or (data and not isinstance(data[0], list)):
        raise ValidationError(
            f"{source.path}: expected a JSON list of "
            "[timestamp, open, high, low, close, volume] lists",
            field="path",
            value=str(source.path),
        )
    for start in range(0, len(data), batch_rows):
        rows = data[start : start + batch_rows]
        bad = [i for i, r in enumerate(rows) if not isinstance(r, list) or len(r) < 6]
        if bad:
            raise ValidationError(
                f"{source.path}: entry {start + bad[0]} is not [timestamp, open, high, low, "
                "close, volume]",
                field="path",
                value=str(source.path),
            )
        columns = list(zip(*(r[:6] for r in rows), strict=True))
        names = ("timestamp", *PRICE_COLUMNS)
        # json numbers: decimal text through str() keeps what the file wrote
        yield pa.table(
            {
                n: pa.array([str(v) if n != "timestamp" else v for v in col])
                for n, col in zip(names, columns, strict=True)
            }
        )


# --- shared ---------------------------------------------------------------------------------


def _combined(batches: Any, rows: int = COMBINED_ROWS) -> Iterator[pa.Table]:
    """Small CSV batches (bounded memory) joined into tables of ~`rows` rows (fewer,
    larger upserts)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _standard(source: Source, columns: dict[str, Any]) -> pa.Table:
    """The candle columns under their standard names. pandas' default `to_csv` writes the
    DatetimeIndex as a first column without a name: that is the timestamp. Columns that
    are not candle data are named once in the source's notes."""
    time_name = next((n for n in TIME_ALIASES if n in columns), None)
    if time_name is None and "" in columns:
        time_name = ""
    missing = [c for c in PRICE_COLUMNS if c not in columns]
    if time_name is None or missing:
        need = ", ".join((["timestamp"] if time_name is None else []) + missing)
        raise ValidationError(f"{source.path}: missing column(s): {need}", field=need)
    out: dict[str, Any] = {"timestamp": columns[time_name]}
    for name in PRICE_COLUMNS:
        col = columns[name]
        out[name] = _exact(col) if pa.types.is_string(col.type) else col
    for optional in ("trades_count", "vwap", "symbol", "timeframe"):
        if optional in columns:
            out[optional] = columns[optional]
    ignored = sorted(set(columns) - set(out) - {time_name})
    note = f"ignored column(s) that are not candle data: {', '.join(ignored)}"
    if ignored and note not in source.notes:
        source.notes.append(note)
    return pa.table(out)


def _exact(column: Any) -> Any:
    """Text prices as decimal128(38, 8) when every value fits exactly; else the text
    itself, so that each bad value is reported with its row by the ingest."""
    try:
        return pc.cast(column, pa.decimal128(38, 8))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return column


def open_source(path: Path, *, batch_rows: int = BATCH_ROWS) -> tuple[Source, Iterator[Any]]:
    """Detect the layout and return the source description and its stream of tables."""
    if not path.is_file():
        raise ValidationError(f"{path}: no such file", field="path", value=str(path))
    fmt = detect(path)
    symbol, timeframe = suggest_series(path)
    source = Source(
        path=path, format=fmt, size=path.stat().st_size, symbol=symbol, timeframe=timeframe
    )
    return source, stream(source, batch_rows=batch_rows)
