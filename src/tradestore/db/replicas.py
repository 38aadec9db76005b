"""Reads that tolerate staleness go to a streaming replica (DATABASE_REPLICA_URLS).

`ReadRouter` answers the read methods of `Database` (query, query_one, query_value,
connection) on a replica whose replay lag is within a bound (default
TRADESTORE_REPLICA_MAX_LAG_S, 5 s; `max_lag_s` per call), else on the primary. Each
replica's state is probed at most once a second: its lag (0 when it has replayed all it
received, else the time since the last replayed transaction), and whether it is a
replica at all (a promoted one is not: reading it would split the history). A replica
that cannot be reached is skipped for a while. When no replica qualifies, reads go to
the primary, with one warning per change of that situation.

Writes, reads inside a transaction and read-your-writes paths use the primary's
`Database` directly; only the repositories' history, list and report reads take the
router.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg.abc import Params
from psycopg.rows import DictRow

from tradestore.db.database import Connection, Database, Query
from tradestore.errors import TradeStoreError
from tradestore.frames import Records

log = logging.getLogger(__name__)

PROBE_EVERY_S = 1.0
UNREACHABLE_PAUSE_S = 5.0
PROBE = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS lag_s
"""


@dataclass
class ReplicaState:
    name: str  # host:port, for logs and metrics
    db: Database
    # None until probed, and whenever the last probe found it unreachable or promoted
    lag_s: float | None = None
    is_replica: bool = True
    reachable: bool = True
    probed_at: float = 0.0

    def usable(self, max_lag_s: float) -> bool:
        return self.lag_s is not None and self.lag_s <= max_lag_s


class ReadRouter:
    def __init__(self, primary: Database, replicas: list[ReplicaState], max_lag_s: float) -> None:
        self.primary = primary
        self.replicas = replicas
        self.max_lag_s = max_lag_s
        self._on_primary = False  # reads fell back to the primary (warned once)
        self._lock = asyncio.Lock()

    async def choose(self, max_lag_s: float | None = None) -> Database:
        """The database for the next read: the least lagging usable replica, else the
        primary."""
        if not self.replicas:
            return self.primary
        bound = self.max_lag_s if max_lag_s is None else max_lag_s
        await self._probe_due()
        usable = [r for r in self.replicas if r.usable(bound)]
        if usable:
            if self._on_primary:
                log.warning("replica %s usable again: reads go to replicas", usable[0].name)
                self._on_primary = False
            return min(usable, key=lambda r: r.lag_s or 0.0).db
        self._warn_primary(bound)
        return self.primary

    def lags(self) -> dict[str, float | None]:
        """Each replica's last known lag in seconds (None: unreachable or promoted)."""
        return {r.name: r.lag_s for r in self.replicas}

    async def probe(self) -> None:
        """Probe every replica now."""
        await asyncio.gather(*(self._probe(r) for r in self.replicas))

    # --- the read methods of Database --------------------------------------------------
    async def query(self, query: Query, params: Params | None = None) -> list[DictRow]:
        return await (await self.choose()).query(query, params)

    async def query_one(self, query: Query, params: Params | None = None) -> DictRow | None:
        return await (await self.choose()).query_one(query, params)

    async def query_value(self, query: Query, params: Params | None = None) -> Any:
        return await (await self.choose()).query_value(query, params)

    async def records(self, query: Query, params: Params | None = None) -> Records:
        return await (await self.choose()).records(query, params)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with (await self.choose()).connection() as conn:
            yield conn

    # --- probing ----------------------------------------------------------------------
    async def _probe_due(self) -> None:
        if not self._due():
            return
        async with self._lock:  # reads arriving together probe once: due again inside
            await asyncio.gather(*(self._probe(r) for r in self._due()))

    def _due(self) -> list[ReplicaState]:
        now = time.monotonic()
        return [r for r in self.replicas if now - r.probed_at >= self._interval(r)]

    @staticmethod
    def _interval(replica: ReplicaState) -> float:
        return PROBE_EVERY_S if replica.reachable else UNREACHABLE_PAUSE_S

    async def _probe(self, replica: ReplicaState) -> None:
        replica.probed_at = time.monotonic()
        try:
            row = await asyncio.wait_for(replica.db.query_one(PROBE), timeout=2.0)
        except (TradeStoreError, TimeoutError) as exc:
            if replica.reachable:
                log.warning("replica %s unreachable, skipped: %s", replica.name, exc)
            replica.reachable, replica.lag_s = False, None
            return
        assert row is not None
        replica.reachable = True
        if not row["in_recovery"] and replica.is_replica:
            log.warning("replica %s is no longer a replica (promoted?): skipped", replica.name)
        replica.is_replica = bool(row["in_recovery"])
        replica.lag_s = None if row["lag_s"] is None else max(0.0, float(row["lag_s"]))

    def _warn_primary(self, bound: float) -> None:
        if self._on_primary:
            return
        states = ", ".join(f"{r.name}: {_state(r)}" for r in self.replicas)
        log.warning("no replica within %g s (%s): reads go to the primary", bound, states)
        self._on_primary = True


def _state(replica: ReplicaState) -> str:
    if not replica.reachable:
        return "unreachable"
    if not replica.is_replica:
        return "not a replica"
    return "lag unknown" if replica.lag_s is None else f"{replica.lag_s:.1f} s behind"
