"""The shape of a maintenance task, shared by everything `tradestore maintain` runs.

A task looks at the database and says what it would do (`plan`), then does it (`run`),
reporting progress. Each is built with the narrow parts it works on (a Database, a
Retention, ...), never the TradeStore facade; `tradestore.ops.maintenance` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PlannedAction:
    task: str  # e.g. "partitions", "retention", "archive", "compression", "rollups"
    action: str  # e.g. "create", "drop", "archive", "compress", "refresh"
    target: str  # e.g. "market_data_p20240101" or "trades older than 2024-11-24"
    detail: str = ""


Progress = Callable[[int, int], None]  # (done, total)


class MaintenanceTask(Protocol):
    name: str

    async def plan(self) -> list[PlannedAction]: ...

    async def run(self, progress: Progress | None = None) -> list[str]:
        """Do the planned work; returns human-readable lines of what was done."""
        ...
