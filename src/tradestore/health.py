"""The health of the store's servers: PostgreSQL must be up, Redis is optional."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ComponentHealth:
    ok: bool
    latency_ms: float | None
    detail: str


@dataclass(frozen=True)
class Health:
    postgresql: ComponentHealth
    redis: ComponentHealth

    @property
    def ok(self) -> bool:
        """PostgreSQL is what must be up; Redis is optional."""
        return self.postgresql.ok

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
