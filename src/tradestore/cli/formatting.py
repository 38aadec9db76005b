"""Small formatters shared by CLI tables."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from rich.table import Table

from tradestore.errors import ValidationError
from tradestore.store import Health


def money(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = f"{value:,.8f}".rstrip("0").rstrip(".")
    return text or "0"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_when(value: str | None, *, option: str) -> datetime | None:
    """CLI dates: ISO 8601; a date or a naive time means UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise ValidationError(
                f"{option}: not an ISO date or time: {value!r}", field=option, value=value
            ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def health_table(health: Health) -> Table:
    table = Table("component", "ok", "latency", "detail", title="health")
    for name, part in (("postgresql", health.postgresql), ("redis", health.redis)):
        latency = f"{part.latency_ms:.2f} ms" if part.latency_ms is not None else "-"
        table.add_row(name, "[green]yes[/]" if part.ok else "[red]no[/]", latency, part.detail)
    return table
