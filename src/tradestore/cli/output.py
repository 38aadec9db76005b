"""How commands print records: a table for people, JSON or CSV for scripts.

Every list and show command takes `--format table|json|csv`; streams (`events tail`,
`logs tail`) print JSON lines with `--format json`. Values keep their meaning in JSON and
CSV: decimals as exact strings, times as ISO 8601 in UTC, ids in full. Notes meant for a
person (a next-page cursor, a count) go to stderr in JSON and CSV, so stdout is only data.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

import typer
from rich.table import Table

from tradestore.cli.common import console, err_console
from tradestore.cli.formatting import money, when

LIMIT_MAX = 10_000


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


FORMAT_HELP = "table for people; json or csv for scripts (json lines for streams)."


def format_option() -> Any:
    return typer.Option(Format.TABLE, "--format", case_sensitive=False, help=FORMAT_HELP)


def limit_option(default: int = 50) -> Any:
    return typer.Option(
        default, min=1, max=LIMIT_MAX, help=f"At most this many rows (1 to {LIMIT_MAX:,})."
    )


Row = Mapping[str, Any]


def print_rows(
    rows: Sequence[Row], fmt: Format, *, title: str, columns: Sequence[str] | None = None
) -> None:
    """Records as a table, a JSON array or CSV (header first); `columns` orders them (all
    of the first row's keys by default)."""
    names = list(columns or (rows[0].keys() if rows else ()))
    if fmt is Format.JSON:
        _write(json.dumps([{n: plain(r.get(n)) for n in names} for r in rows]) + "\n")
    elif fmt is Format.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[_csv_cell(r.get(n)) for n in names] for r in rows])
    elif not names:
        console.print(f"{title}: none", highlight=False)
    else:
        table = Table(*names, title=title)
        for r in rows:
            table.add_row(*(cell(r.get(n)) for n in names))
        console.print(table)


def print_record(record: Row, fmt: Format, *, title: str) -> None:
    """One record: field and value lines in a table, an object in JSON, one CSV row."""
    if fmt is Format.TABLE:
        table = Table("field", "value", title=title, show_header=False)
        for name, value in record.items():
            table.add_row(name, cell(value))
        console.print(table)
    elif fmt is Format.JSON:
        _write(json.dumps(plain(record)) + "\n")
    else:
        print_rows([record], fmt, title=title)


def print_line(record: Row, fmt: Format, text: str) -> None:
    """One record of a stream: a JSON line, a CSV row (no header), or `text` for people."""
    if fmt is Format.JSON:
        _write(json.dumps(plain(record)) + "\n")
    elif fmt is Format.CSV:
        csv.writer(sys.stdout, lineterminator="\n").writerow(
            [_csv_cell(v) for v in record.values()]
        )
    else:
        console.print(text, highlight=False, soft_wrap=True)
    sys.stdout.flush()


def note(text: str, fmt: Format) -> None:
    """A remark for a person: stdout beside a table, stderr beside data."""
    (console if fmt is Format.TABLE else err_console).print(text, highlight=False)


def plain(value: Any) -> Any:
    """A value as JSON carries it without losing anything."""
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def cell(value: Any) -> str:
    """A value as a table shows it."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(plain(value), sort_keys=True)
    return str(value)


def _csv_cell(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
