"""TradeStore: opens and closes the connections and owns everything built on them.

async with TradeStore() as store:          # settings from the environment
    await store.migrate()
    print(await store.health())
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, timedelta
from functools import cached_property
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from tradestore.analytics.backtests import BacktestRepository
from tradestore.analytics.daily import DailyMetrics
from tradestore.analytics.portfolio import PortfolioRepository
from tradestore.cache.two_tier import TwoTierCache
from tradestore.config.store import ConfigStore
from tradestore.db.database import Connection, Database, build_pool
from tradestore.db.embedded import start_embedded
from tradestore.db.migrator import MigrationResult, MigrationStatus, Migrator
from tradestore.db.partitions import PartitionManager
from tradestore.db.replicas import ReadRouter, ReplicaState
from tradestore.errors import ConfigurationError, TradeStoreError
from tradestore.exchange.service import ExchangeData
from tradestore.health import ComponentHealth, Health
from tradestore.keys import Keys
from tradestore.logs.handler import SystemLogHandler
from tradestore.logs.search import LogFilter, search_logs
from tradestore.marketdata.blocks import Compactor
from tradestore.marketdata.ingest import IngestResult
from tradestore.marketdata.repository import MarketDataRepository
from tradestore.marketdata.rollups import Rollups
from tradestore.marketdata.validation import TimeWindow
from tradestore.ops.maintenance import Maintenance
from tradestore.ops.market_archive import MarketArchive
from tradestore.ops.monitoring import Monitor
from tradestore.ops.retention import Retention
from tradestore.realtime.bus import EventBus
from tradestore.realtime.latest import LatestMarketData
from tradestore.realtime.ratelimit import RateLimiter
from tradestore.realtime.sessions import SessionStore
from tradestore.realtime.state import StrategyState
from tradestore.redis_link import RedisLink
from tradestore.settings import Settings, TimeSeriesMode, load_settings, mask_url
from tradestore.supervisor import describe
from tradestore.timeframes import Timeframe
from tradestore.trading.orders import OrderRepository
from tradestore.trading.strategies import StrategyRepository
from tradestore.trading.trades import TradeRepository

log = logging.getLogger(__name__)

LOOP_STOP_TIMEOUT_S = 1.0  # background loops, stopped at once
POOL_CLOSE_TIMEOUT_S = 0.8  # then pools and the Redis client, at once: close() < 2 s


class TradeStore:
    """The entry point of the library. Use `async with`, or `open()` / `close()`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        pool: AsyncConnectionPool[Connection] | None = None,
        redis: aioredis.Redis | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self._given_pool = pool
        self.redis = RedisLink(self.settings, client=redis)
        self._db: Database | None = None
        self._partitions: PartitionManager | None = None
        self.embedded_dir: str | None = None
        self.database_url: str | None = None  # masked, for display
        self._conninfo: str | None = None
        self._extra_dbs: list[Database] = []  # e.g. the monitor's own small pool
        self._mode: TimeSeriesMode | None = None  # read at open and after migrate
        self._reads: ReadRouter | None = None

    # --- lifecycle -----------------------------------------------------------------
    async def open(self) -> TradeStore:
        if self._db is not None:
            return self
        if self._given_pool is not None:
            db = Database(self._given_pool, owns_pool=False)
        else:
            db = Database(build_pool(await self._resolve_conninfo(), self.settings))
            await db.open(timeout_s=max(10.0, self.settings.connect_timeout_s * 5))
        self._db = db
        if self.settings.pgbouncer:
            await _check_utc(db)
        self._mode = await self.migrator().recorded_mode()
        await self._open_replicas()
        await self.redis.open()
        await self.cache.start()
        if self.settings.event_relay and self.redis.configured:
            self.events.start_relay(self.direct_conninfo)
        return self

    async def close(self) -> None:
        """Stop the background loops, then close the connections: within about 2 s
        (LOOP_STOP_TIMEOUT_S + POOL_CLOSE_TIMEOUT_S) whatever the state of PostgreSQL and
        Redis; never raises. The store can be opened again afterwards."""
        events: EventBus | None = self.__dict__.get("events")  # made only once used
        await asyncio.gather(
            *([events.stop_relay(LOOP_STOP_TIMEOUT_S)] if events is not None else []),
            self.cache.stop(LOOP_STOP_TIMEOUT_S),
        )
        databases = [
            *self._extra_dbs,
            *(r.db for r in (self._reads.replicas if self._reads else [])),
            *([self._db] if self._db is not None else []),
        ]
        self._reads = None
        self._extra_dbs.clear()
        self._db = None
        await asyncio.gather(
            *(
                _bounded(db.close(timeout_s=POOL_CLOSE_TIMEOUT_S), "database pool")
                for db in databases
            ),
            _bounded(self.redis.close(), "Redis client"),
        )
        self._forget_parts()

    def _forget_parts(self) -> None:
        """Drop the cached repositories: they hold the closed pool."""
        for name, member in vars(type(self)).items():
            if isinstance(member, cached_property):
                self.__dict__.pop(name, None)

    async def __aenter__(self) -> TradeStore:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _resolve_conninfo(self) -> str:
        url = self.settings.postgres_conninfo()
        if url is not None:
            self.database_url = mask_url(url)
            self._conninfo = url
            return url
        server = await start_embedded(self.settings.data_dir)
        self.embedded_dir = str(server.data_dir)
        self.database_url = server.url
        self._conninfo = server.url
        log.warning("no DATABASE_URL set: using the embedded PostgreSQL in %s", server.data_dir)
        return server.url

    async def _open_replicas(self) -> None:
        """Pools for DATABASE_REPLICA_URLS, opened without waiting: a replica that is down
        at start is skipped by the router, not an error of the store."""
        replicas = []
        for url in self.settings.replica_conninfos():
            db = Database(build_pool(url, self.settings))
            await db.pool.open(wait=False)
            replicas.append(ReplicaState(mask_url(url), db))
        self._reads = ReadRouter(self.db, replicas, self.settings.replica_max_lag_s)

    # --- parts -----------------------------------------------------------------------
    @property
    def reads(self) -> ReadRouter:
        """Where reads that tolerate staleness go: a replica within the lag bound, else
        the primary (see tradestore.db.replicas)."""
        if self._reads is None:
            raise TradeStoreError("the store is not open: use `async with TradeStore()` or open()")
        return self._reads

    @property
    def db(self) -> Database:
        if self._db is None:
            raise TradeStoreError("the store is not open: use `async with TradeStore()` or open()")
        return self._db

    @cached_property
    def keys(self) -> Keys:
        return Keys(self.settings.redis_key_prefix)

    @cached_property
    def cache(self) -> TwoTierCache:
        """The two-tier cache (in-process L1, Redis L2) shared by the repositories."""
        return TwoTierCache(
            self.redis,
            self.keys,
            l1_max_items=self.settings.cache_l1_max_items,
            l1_ttl_ms=self.settings.cache_l1_ttl_ms,
            l2_ttl_ms=self.settings.cache_ttl_ms,
        )

    @cached_property
    def strategies(self) -> StrategyRepository:
        return StrategyRepository(self.db, self.cache)

    @cached_property
    def orders(self) -> OrderRepository:
        return OrderRepository(self.db, reads=self.reads)

    @cached_property
    def trades(self) -> TradeRepository:
        return TradeRepository(self.db, self.cache, reads=self.reads)

    @cached_property
    def market_data(self) -> MarketDataRepository:
        window = TimeWindow(
            self.settings.candle_earliest, timedelta(seconds=self.settings.candle_max_future_s)
        )
        repository = MarketDataRepository(
            self.db,
            self.redis,
            self.keys,
            lambda: self.partitions,
            window,
            reads=self.reads,
            pack_horizon=lambda: self.compactor.ingest_horizon(),
        )
        repository.after_ingest.append(self._record_latest_candle)
        repository.after_delete.append(self._forget_latest_candle)
        repository.coarse_source = lambda: self.rollups
        return repository

    async def _record_latest_candle(self, result: IngestResult) -> None:
        if result.last_candle is not None:
            await self.latest.record_candle(
                result.symbol, result.timeframe.value, result.last_candle, venue=result.venue
            )

    async def _forget_latest_candle(self, venue: str, symbol: str, timeframe: Timeframe) -> None:
        """After a delete: the latest candle is the newest one still stored, if any."""
        await self.latest.forget_candle(symbol, timeframe.value, venue=venue)
        newest = await self.market_data.get_latest_candles(
            symbol, timeframe, 1, exact=True, venue=venue, fresh=True
        )
        if len(newest):
            candle = {name: values[0] for name, values in newest.columns().items()}
            candle["timestamp"] = newest.timestamp[0].item().replace(tzinfo=UTC)
            trades = candle.pop("trades_count", -1)
            candle["trades_count"] = None if trades < 0 else int(trades)
            candle.pop("vwap", None)
            await self.latest.record_candle(symbol, timeframe.value, candle, venue=venue)

    @cached_property
    def exchange(self) -> ExchangeData:
        """Backfill and follow series from exchanges (`store.exchange.backfill(...)`)."""
        return ExchangeData(self.market_data, self.db, self.rate_limiter, self.settings)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        return RateLimiter(self.redis, self.keys)

    @cached_property
    def sessions(self) -> SessionStore:
        return SessionStore(self.redis, self.keys)

    @cached_property
    def strategy_state(self) -> StrategyState:
        return StrategyState(self.redis, self.keys, self.db)

    @cached_property
    def events(self) -> EventBus:
        return EventBus(self.db, self.redis, self.keys)

    @cached_property
    def metrics(self) -> DailyMetrics:
        return DailyMetrics(self.db, lambda: self.market_data)

    @cached_property
    def portfolio(self) -> PortfolioRepository:
        return PortfolioRepository(self.db, lambda: self.partitions)

    @cached_property
    def backtests(self) -> BacktestRepository:
        return BacktestRepository(self.db, reads=self.reads)

    @cached_property
    def config(self) -> ConfigStore:
        key = self.settings.config_key
        return ConfigStore(self.db, self.cache, key.get_secret_value() if key else None)

    @cached_property
    def monitor(self) -> Monitor:
        """Metrics and alerts; queries go through a separate pool of at most two
        connections, so a saturated application pool is measured, not suffered."""
        conninfo = self._conninfo or _pool_conninfo(self._given_pool)
        query_db = self.db
        if conninfo is not None:
            small = self.settings.model_copy(
                update={"pool_min_size": 0, "pool_max_size": 2, "statement_timeout_ms": 5000}
            )
            # never queue behind the locks it is there to report
            query_db = Database(
                build_pool(
                    conninfo, small, lock_timeout_ms=250, application_name="tradestore-monitor"
                )
            )
            self._extra_dbs.append(query_db)
        return Monitor(
            query_db,
            self.redis,
            pool_db=self.db,
            disk_bytes=self.settings.db_disk_bytes,
            reads=self.reads,
        )

    async def log_handler(self, **options: Any) -> SystemLogHandler:
        """A started logging.Handler writing to system_logs (see logs/handler.py)."""
        handler = SystemLogHandler(self.db, self.partitions, **options)
        handler.start()
        return handler

    async def search_logs(self, filters: LogFilter | None = None, *, limit: int = 100) -> list[Any]:
        return await search_logs(self.db, filters or LogFilter(), limit=limit)

    @cached_property
    def latest(self) -> LatestMarketData:
        return LatestMarketData(self.redis, self.keys)

    async def services_health(self) -> dict[str, Any]:
        """Per-service state of the Redis-backed services; never raises."""
        redis = await self.redis.health()
        shared = "shared (Redis)" if redis.ok else "per process (fallback)"
        available = "available" if redis.ok else f"unavailable: {redis.detail}"
        try:
            backlog: dict[str, Any] = await self.events.backlog()
        except TradeStoreError as exc:
            backlog = {"error": str(exc)}
        return {
            "redis": redis.ok,
            "rate_limits": shared,
            "sessions": available,
            "strategy_state": available,
            "latest_market_data": available,
            "cache_l2": "on" if redis.ok else "off (L1 and PostgreSQL only)",
            "events": backlog,
            "background": self.background_health(),
        }

    def background_health(self) -> dict[str, dict[str, Any]]:
        """State of each background loop of this store: running, retrying (with the last
        error and how many attempts failed), stopped or finished."""
        loops = [self.cache.listener]
        if self.events.relay is not None:
            loops.append(self.events.relay)
        states = [loop.health() for loop in loops]
        return {state.name: {**asdict(state), "ok": state.ok} for state in states}

    @property
    def timeseries_mode(self) -> TimeSeriesMode | None:
        """The schema's time-series mode, None before the first migrate (read when the
        store opens and after `migrate()`)."""
        return self._mode

    def _migrated_mode(self) -> TimeSeriesMode:
        if self._mode is None:
            raise TradeStoreError("the schema is not migrated: run `tradestore db migrate`")
        return self._mode

    @cached_property
    def partitions(self) -> PartitionManager:
        """Time partitions of this database's mode (native tables, or hypertable chunks)."""
        return PartitionManager(self.db, self._migrated_mode())

    @cached_property
    def rollups(self) -> Rollups:
        """Rollups of 1m candles (market_data_rollup and its dirty days, both modes)."""
        return Rollups(self.db, self.market_data.reader)

    @cached_property
    def retention(self) -> Retention:
        return Retention(self.db, self._mode or TimeSeriesMode.NATIVE)

    @cached_property
    def market_archive(self) -> MarketArchive:
        """Export a time range of market_data to Parquet (and drop it), and import it back."""
        return MarketArchive(self.db, self._migrated_mode(), self.retention, self.partitions)

    @cached_property
    def maintenance(self) -> Maintenance:
        """Every maintenance task (plan, run, schedule) over this store's parts."""
        return Maintenance(
            self.db,
            self._migrated_mode(),
            partitions=self.partitions,
            retention=self.retention,
            rollups=self.rollups,
            config=self.config,
            compactor=self.compactor if self.settings.compact_after_days > 0 else None,
            session=self.session_db,
        )

    @cached_property
    def compactor(self) -> Compactor:
        """Packs closed candle periods into column blocks (marketdata/blocks.py)."""
        after = timedelta(days=self.settings.compact_after_days)
        return Compactor(self.db, self._migrated_mode(), after)

    # --- schema ------------------------------------------------------------------------
    @property
    def direct_conninfo(self) -> str | None:
        """Where session-level work connects: DATABASE_DIRECT_URL (past PgBouncer), else
        the main URL."""
        if self._conninfo is None and self._given_pool is not None:
            return _pool_conninfo(self._given_pool)
        if self.settings.database_direct_url is not None:
            return self.settings.database_direct_url.get_secret_value()
        return self._conninfo

    @asynccontextmanager
    async def session_db(self) -> AsyncIterator[Database]:
        """A small pool (two connections) on the direct URL, for work whose session must last
        (advisory locks held across statements); the main pool when there is no other."""
        direct = self.direct_conninfo
        if direct is None or direct == self._conninfo:
            yield self.db
            return
        small = self.settings.model_copy(
            update={"pool_min_size": 1, "pool_max_size": 2, "pgbouncer": False}
        )
        db = Database(build_pool(direct, small))
        await db.open()
        try:
            yield db
        finally:
            await db.close()

    def migrator(self, db: Database | None = None) -> Migrator:
        return Migrator(
            db or self.db,
            requested_mode=self.settings.timeseries_mode,
            lock_timeout_s=self.settings.migration_lock_timeout_s,
        )

    async def migrate(self, *, dry_run: bool = False) -> MigrationResult:
        """Apply pending migrations on the direct connection (its advisory lock must hold
        for the whole migration, which transaction pooling would not keep)."""
        async with self.session_db() as db:
            result = await self.migrator(db).migrate(dry_run=dry_run)
        if dry_run:
            return result  # nothing changed
        self._mode = result.mode
        for name in ("partitions", "rollups", "retention", "market_archive", "maintenance"):
            self.__dict__.pop(name, None)  # built for the schema as it was
        return result

    async def migration_status(self) -> MigrationStatus:
        return await self.migrator().status()

    # --- health -------------------------------------------------------------------------
    async def health(self) -> Health:
        """PostgreSQL and Redis reachability with latency; never raises."""
        postgresql, redis = await asyncio.gather(self._postgres_health(), self.redis.health())
        return Health(
            postgresql=postgresql,
            redis=ComponentHealth(ok=redis.ok, latency_ms=redis.latency_ms, detail=redis.detail),
        )

    async def _postgres_health(self) -> ComponentHealth:
        if self._db is None:
            return ComponentHealth(ok=False, latency_ms=None, detail="not open")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s * 2):
                await self._db.query_value("SELECT 1")
        except (TradeStoreError, TimeoutError, OSError) as exc:
            return ComponentHealth(ok=False, latency_ms=None, detail=str(exc) or "timeout")
        latency = (time.perf_counter() - started) * 1000
        return ComponentHealth(ok=True, latency_ms=latency, detail="ok")


async def _bounded(closing: Awaitable[None], what: str) -> None:
    """Await a close step for at most POOL_CLOSE_TIMEOUT_S; log, never raise."""
    try:
        await asyncio.wait_for(closing, POOL_CLOSE_TIMEOUT_S)
    except Exception as exc:
        log.warning("closing the %s: %s", what, describe(exc) or "timed out")


UTC_NAMES = ("UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Universal", "Zulu")


async def _check_utc(db: Database) -> None:
    """Behind PgBouncer no startup option reaches the server: the role (or database)
    must itself be in UTC, or every timestamp read would shift."""
    zone = await db.query_value("SELECT current_setting('TimeZone')")
    if zone not in UTC_NAMES:
        raise ConfigurationError(
            f"TRADESTORE_PGBOUNCER: the server's sessions are in {zone}, not UTC; run "
            "ALTER ROLE <user> SET timezone = 'UTC' (and statement_timeout) on PostgreSQL"
        )


def _pool_conninfo(pool: AsyncConnectionPool[Connection] | None) -> str | None:
    return pool.conninfo if pool is not None and isinstance(pool.conninfo, str) else None
