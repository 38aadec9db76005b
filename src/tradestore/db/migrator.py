"""Numbered SQL migrations shipped in `tradestore/schema`, applied once each, in order.

- A file is `NNNN_name.sql`, or `NNNN_name.native.sql` + `NNNN_name.timescale.sql` when
  the two time-series modes need different DDL; the variant for the database's mode runs.
- The mode is detected once, on the first migration, and recorded in `schema_info`.
- Each migration runs in its own transaction, recorded in `schema_migrations` with its
  checksum and duration. A file whose first line is `-- tradestore:no-transaction`
  runs statement by statement in autocommit (statements separated by lines reading
  `-- tradestore:statement`); TimescaleDB needs that for continuous aggregates.
- A session-level advisory lock serialises migrators: two started at once apply each
  migration exactly once.
- An applied migration whose file has changed is an error naming it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

import psycopg
from psycopg import errors as pg
from psycopg import sql

from tradestore.db.database import Connection, Database
from tradestore.errors import MigrationError
from tradestore.settings import TimeSeriesMode

log = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 7_415_203_981  # pg_advisory_lock key reserved for tradestore migrations
NO_TRANSACTION_MARKER = "-- tradestore:no-transaction"
STATEMENT_SEPARATOR = "-- tradestore:statement"
_FILE_RE = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<mode>native|timescale))?\.sql$"
)

BOOTSTRAP_SQL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    id SERIAL PRIMARY KEY,
    migration_name VARCHAR(255) NOT NULL UNIQUE,
    checksum CHAR(64) NOT NULL,
    variant VARCHAR(20) NOT NULL DEFAULT 'common',
    executed_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    duration_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

SELECT_APPLIED = """
SELECT migration_name, checksum, variant, executed_at, duration_ms
  FROM schema_migrations ORDER BY migration_name
"""

INSERT_APPLIED = """
INSERT INTO schema_migrations (migration_name, checksum, variant, duration_ms)
VALUES (%s, %s, %s, %s)
"""


@dataclass(frozen=True)
class MigrationFile:
    name: str  # e.g. "0002_timeseries"
    variant: str  # "common", "native" or "timescale"
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.text.startswith(NO_TRANSACTION_MARKER)

    def statements(self) -> list[str]:
        parts = self.text.split(STATEMENT_SEPARATOR)
        return [p.strip() for p in parts if _has_sql(p)]


@dataclass(frozen=True)
class AppliedMigration:
    name: str
    checksum: str
    variant: str
    executed_at: datetime
    duration_ms: int


@dataclass
class MigrationStatus:
    mode: TimeSeriesMode | None
    applied: list[AppliedMigration] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


@dataclass
class MigrationResult:
    mode: TimeSeriesMode
    applied: list[str] = field(default_factory=list)
    dry_run: bool = False


def _has_sql(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


def available_migrations() -> dict[str, dict[str, MigrationFile]]:
    """Migrations shipped in the package: name -> variant -> file, in name order."""
    found: dict[str, dict[str, MigrationFile]] = {}
    for entry in resources.files("tradestore.schema").iterdir():
        match = _FILE_RE.match(entry.name)
        if not match:
            continue
        name = f"{match['version']}_{match['name']}"
        variant = match["mode"] or "common"
        found.setdefault(name, {})[variant] = MigrationFile(name, variant, entry.read_text("utf-8"))
    for name, variants in found.items():
        if "common" in variants and len(variants) > 1:
            raise MigrationError(f"migration {name} has both a common and a mode-specific file")
        if "common" not in variants and set(variants) != {"native", "timescale"}:
            raise MigrationError(f"migration {name} needs both .native.sql and .timescale.sql")
    return dict(sorted(found.items()))


def pick_variant(variants: dict[str, MigrationFile], mode: TimeSeriesMode) -> MigrationFile:
    return variants.get("common") or variants[mode.value]


class Migrator:
    def __init__(
        self,
        db: Database,
        *,
        requested_mode: TimeSeriesMode = TimeSeriesMode.AUTO,
        lock_timeout_s: float = 120.0,
    ) -> None:
        self.db = db
        self.requested_mode = requested_mode
        self.lock_timeout_s = lock_timeout_s

    async def status(self) -> MigrationStatus:
        async with self.db.connection() as conn:
            if not await _table_exists(conn, "schema_migrations"):
                return MigrationStatus(mode=None, pending=list(available_migrations()))
            applied = await _applied(conn)
            mode = await _recorded_mode(conn)
        pending = [name for name in available_migrations() if name not in applied]
        return MigrationStatus(mode=mode, applied=list(applied.values()), pending=pending)

    async def recorded_mode(self) -> TimeSeriesMode | None:
        """The time-series mode the schema was migrated in, None before the first
        migrate: what a store needs when it opens (no migration file is read)."""
        async with self.db.connection() as conn:
            return await _recorded_mode(conn)

    async def migrate(self, *, dry_run: bool = False) -> MigrationResult:
        async with self.db.connection() as conn:
            await conn.execute("SET statement_timeout = 0")
            try:
                await self._lock(conn)
                try:
                    return await self._migrate_locked(conn, dry_run=dry_run)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
            finally:
                await conn.execute("RESET statement_timeout")
                await conn.execute("RESET lock_timeout")

    async def _lock(self, conn: Connection) -> None:
        await conn.execute(
            sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(self.lock_timeout_s)}s"))
        )
        try:
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        except pg.LockNotAvailable:
            raise MigrationError(
                f"another migrator has held the migration lock for over {self.lock_timeout_s:g} s"
            ) from None

    async def _migrate_locked(self, conn: Connection, *, dry_run: bool) -> MigrationResult:
        bootstrapped = await _table_exists(conn, "schema_migrations")
        if not dry_run and not bootstrapped:
            await conn.execute(BOOTSTRAP_SQL.encode())
            bootstrapped = True
        mode = await _recorded_mode(conn) or await self._detect_mode(conn, dry_run=dry_run)
        applied = await _applied(conn) if bootstrapped else {}
        available = available_migrations()
        _check_history(applied, available, mode)
        result = MigrationResult(mode=mode, dry_run=dry_run)
        for name, variants in available.items():
            if name in applied:
                continue
            result.applied.append(name)
            if not dry_run:
                await _apply(conn, pick_variant(variants, mode))
        return result

    async def _detect_mode(self, conn: Connection, *, dry_run: bool) -> TimeSeriesMode:
        # On a connection of its own: enabling the extension can end the connection
        # (FATAL), which must not take the migration lock's connection with it.
        async with self.db.connection() as probe:
            mode = await _detect_timescale(probe, self.requested_mode, enable=not dry_run)
        if not dry_run:
            await conn.execute(
                "INSERT INTO schema_info (key, value) VALUES ('timeseries_mode', %s) "
                "ON CONFLICT (key) DO NOTHING",
                (mode.value,),
            )
        log.info("time-series mode: %s", mode.value)
        return mode


NOT_PRELOADED = (
    "the timescaledb extension is installed but not loaded: add 'timescaledb' to "
    "shared_preload_libraries in postgresql.conf and restart PostgreSQL"
)


async def _detect_timescale(
    conn: Connection, requested: TimeSeriesMode, *, enable: bool
) -> TimeSeriesMode:
    """The time-series mode for this server: TimescaleDB when it is enabled, or can be;
    native otherwise (an error instead when TimescaleDB was asked for)."""
    if requested is TimeSeriesMode.NATIVE:
        return TimeSeriesMode.NATIVE
    if await _exists(conn, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
        return TimeSeriesMode.TIMESCALE
    if not await _exists(conn, "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        return _fallback(requested, "the timescaledb extension is not available on this server")
    if await _preloaded(conn) is False:
        return _fallback(requested, NOT_PRELOADED)
    if not enable:
        return TimeSeriesMode.TIMESCALE
    try:
        async with conn.transaction():
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        return _fallback(requested, f"cannot enable TimescaleDB: {str(exc).splitlines()[0]}")
    return TimeSeriesMode.TIMESCALE


def _fallback(requested: TimeSeriesMode, reason: str) -> TimeSeriesMode:
    if requested is TimeSeriesMode.TIMESCALE:
        raise MigrationError(f"TRADESTORE_TIMESERIES_MODE=timescale, but {reason}")
    if "not available" not in reason:  # a server without TimescaleDB is the normal case
        log.warning("%s; using native partitioning", reason)
    return TimeSeriesMode.NATIVE


async def _preloaded(conn: Connection) -> bool | None:
    """Whether timescaledb is in shared_preload_libraries (None: not readable by us)."""
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT current_setting('shared_preload_libraries') AS v")
            row = await cur.fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    libraries = (row["v"] if row else "") or ""
    return "timescaledb" in [name.strip().strip('"') for name in libraries.split(",")]


async def _exists(conn: Connection, query: str) -> bool:
    cur = await conn.execute(query)
    return await cur.fetchone() is not None


def _check_history(
    applied: dict[str, AppliedMigration],
    available: dict[str, dict[str, MigrationFile]],
    mode: TimeSeriesMode,
) -> None:
    for name, record in applied.items():
        variants = available.get(name)
        if variants is None:
            raise MigrationError(
                f"migration {name} is recorded as applied but no longer ships with tradestore"
            )
        current = variants.get(record.variant) or pick_variant(variants, mode)
        if current.checksum != record.checksum.strip():
            raise MigrationError(
                f"migration {name} ({current.variant}) was changed after it was applied: "
                f"checksum {record.checksum[:12]}… in the database, {current.checksum[:12]}… "
                "in the file. Restore the file and put the change in a new migration."
            )


async def _apply(conn: Connection, migration: MigrationFile) -> None:
    log.info("applying migration %s (%s)", migration.name, migration.variant)
    started = time.perf_counter()
    try:
        if migration.transactional:
            async with conn.transaction():
                await conn.execute(migration.text.encode())
                await _record(conn, migration, started)
        else:
            for statement in migration.statements():
                await conn.execute(statement.encode())
            await _record(conn, migration, started)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrationError(f"migration {migration.name} failed: {reason}") from exc


async def _record(conn: Connection, migration: MigrationFile, started: float) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000)
    await conn.execute(
        INSERT_APPLIED, (migration.name, migration.checksum, migration.variant, duration_ms)
    )


async def _table_exists(conn: Connection, table: str) -> bool:
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (table,))
    row = await cur.fetchone()
    return bool(row and row["present"])


async def _applied(conn: Connection) -> dict[str, AppliedMigration]:
    cur = await conn.execute(SELECT_APPLIED)
    return {
        row["migration_name"]: AppliedMigration(
            name=row["migration_name"],
            checksum=row["checksum"],
            variant=row["variant"],
            executed_at=row["executed_at"],
            duration_ms=row["duration_ms"],
        )
        for row in await cur.fetchall()
    }


async def _recorded_mode(conn: Connection) -> TimeSeriesMode | None:
    if not await _table_exists(conn, "schema_info"):
        return None
    cur = await conn.execute("SELECT value FROM schema_info WHERE key = 'timeseries_mode'")
    row = await cur.fetchone()
    return TimeSeriesMode(row["value"]) if row else None
