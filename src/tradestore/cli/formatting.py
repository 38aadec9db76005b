"""Small formatters shared by CLI tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from rich.table import Table

from tradestore.errors import ValidationError
from tradestore.health import Health


def money(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = f"{value:,.8f}".rstrip("0").rstrip(".")
    return text or "0"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_when(value: str | None, *, option: str) -> datetime | None:
    """CLI times: ISO 8601 (a date or a naive time means UTC), `now`, `today`,
    `yesterday` (midnight UTC), or an age back from now such as `90m`, `24h`, `7d`, `2w`."""
    if value is None:
        return None
    text = value.strip().lower()
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    named = {"now": now, "today": midnight, "yesterday": midnight - timedelta(days=1)}
    if text in named:
        return named[text]
    age = _duration(text)
    if age is not None:
        return now - age
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise ValidationError(
                f"{option}: {value!r} is not a time (ISO like 2025-01-31 or "
                "2025-01-31T12:00Z, now, today, yesterday, or an age like 24h, 7d)",
                field=option,
                value=value,
            ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def health_table(health: Health) -> Table:
    table = Table("component", "ok", "latency", "detail", title="health")
    for name, part in (("postgresql", health.postgresql), ("redis", health.redis)):
        latency = f"{part.latency_ms:.2f} ms" if part.latency_ms is not None else "-"
        table.add_row(name, "[green]yes[/]" if part.ok else "[red]no[/]", latency, part.detail)
    return table


_UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def _duration(text: str) -> timedelta | None:
    """`90m`, `36h`, `7d`, `52w`: a positive whole number and a unit; None otherwise."""
    unit = _UNITS.get(text[-1:]) if text else None
    if unit is None or not text[:-1].isdigit() or int(text[:-1]) == 0:
        return None
    return int(text[:-1]) * unit


def parse_age(value: str | None, *, option: str) -> timedelta | None:
    """An age such as `730d`, `52w` or `36h`."""
    if value is None:
        return None
    age = _duration(value.strip().lower())
    if age is None:
        raise ValidationError(
            f"{option}: {value!r} is not an age like 730d, 52w or 36h", field=option, value=value
        )
    return age
