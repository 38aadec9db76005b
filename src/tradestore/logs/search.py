"""Searching system_logs: newest first, by level (and above), category, strategy, time
range and message text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tradestore.db.database import Database
from tradestore.errors import ValidationError
from tradestore.logs.handler import LEVELS


@dataclass(frozen=True)
class LogFilter:
    level: str | None = None  # this level and above
    category: str | None = None
    strategy_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None  # substring of the message


SEVERITY = ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
SEARCH_SQL = """
SELECT id, timestamp, level, category, strategy_id, trade_id, order_id, message, details,
       user_id, session_id, ip_address, user_agent
  FROM system_logs
 WHERE (%(levels)s::text[] IS NULL OR level = ANY(%(levels)s))
   AND (%(category)s::text IS NULL OR category = %(category)s)
   AND (%(strategy_id)s::uuid IS NULL OR strategy_id = %(strategy_id)s)
   AND timestamp >= %(since)s AND timestamp <= %(until)s
   AND (%(text)s::text IS NULL OR message ILIKE '%%' || %(text)s || '%%' ESCAPE '\\')
 ORDER BY timestamp DESC, id DESC
 LIMIT %(limit)s
"""


async def search_logs(db: Database, filters: LogFilter, *, limit: int = 100) -> list[Any]:
    level = (filters.level or "DEBUG").upper()
    level = LEVELS.get(level, level)
    if level not in SEVERITY:
        raise ValidationError(
            f"level: unknown level {filters.level!r}", field="level", value=filters.level
        )
    return list(
        await db.query(
            SEARCH_SQL,
            {
                # every level: no filter at all, so the time index serves the newest first
                "levels": None if level == SEVERITY[0] else SEVERITY[SEVERITY.index(level) :],
                "category": filters.category,
                "strategy_id": filters.strategy_id,
                "since": filters.since or datetime(1970, 1, 1, tzinfo=UTC),
                "until": filters.until or datetime(9999, 1, 1, tzinfo=UTC),
                "text": None if filters.text is None else _like_literal(filters.text),
                "limit": limit,
            },
        )
    )


def _like_literal(text: str) -> str:
    """text matched as itself inside a LIKE pattern: %, _ and the escape escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
