"""The shape of a maintenance task, shared by everything `tradestore maintain` runs.

A task looks at the database and says what it would do (`plan`), then does it (`run`),
reporting progress. Tasks are registered in `tradestore.ops.maintenance`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tradestore.store import TradeStore


@dataclass(frozen=True)
class PlannedAction:
    task: str  # e.g. "partitions", "retention", "archive", "compression", "rollups"
    action: str  # e.g. "create", "drop", "archive", "compress", "refresh"
    target: str  # e.g. "market_data_p20240101" or "trades older than 2024-11-24"
    detail: str = ""


Progress = Callable[[int, int], None]  # (done, total)


class MaintenanceTask(Protocol):
    name: str

    async def plan(self, store: TradeStore) -> list[PlannedAction]: ...

    async def run(self, store: TradeStore, progress: Progress | None = None) -> list[str]:
        """Do the planned work; returns human-readable lines of what was done."""
        ...
