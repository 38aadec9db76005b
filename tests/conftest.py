"""Fixtures against the real PostgreSQL and Redis of this machine (never mocks).

- PostgreSQL: `TRADESTORE_TEST_ADMIN_URL` (default: postgres on 127.0.0.1:5432, trust auth)
  is used to create one migrated database per test run, and empty ones on demand; all
  are dropped at the end.
- Redis: `TRADESTORE_TEST_REDIS_URL` (default redis://127.0.0.1:6379/0). Every test
  gets its own key prefix and deletes only its own keys.
- Time-series mode, chosen per run: `TRADESTORE_TEST_MODE=native` (the default) or
  `timescale`, which runs the whole suite on `TRADESTORE_TEST_TIMESCALE_URL` with
  hypertables. Tests of one mode only carry the marker `native_only` or `timescale`.
- `TRADESTORE_TEST_PGBOUNCER=1`: every store of the tests connects through a PgBouncer
  in transaction pooling mode started for the run (migrations and other session-level
  work through DATABASE_DIRECT_URL, as in production behind PgBouncer).
- `TRADESTORE_TEST_REDIS_CLUSTER=1`: Redis is a 3-master Redis Cluster (with a replica
  each) started for the run; every store and raw client of the tests uses it.
A test that needs either server fails, not skips, when it is unreachable.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import hypothesis
import psycopg
import pytest
import redis
from psycopg import sql

from tests.servers import PgBouncer, PostgresServer, RedisClusterServer, RedisServer, free_port
from tradestore import Settings, TradeStore
from tradestore.marketdata.blocks import Compactor

# Examples are checked for correctness, not speed: no per-example deadline (a loaded CI
# machine would otherwise fail a correct test), and no flaky-timing health checks.
hypothesis.settings.register_profile(
    "tradestore", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("tradestore")

TIMESCALE_URL = os.environ.get("TRADESTORE_TEST_TIMESCALE_URL")
MODE = os.environ.get("TRADESTORE_TEST_MODE", "native")
if MODE not in ("native", "timescale"):
    raise pytest.UsageError(f"TRADESTORE_TEST_MODE must be native or timescale, not {MODE!r}")
if MODE == "timescale" and not TIMESCALE_URL:
    raise pytest.UsageError("TRADESTORE_TEST_MODE=timescale needs TRADESTORE_TEST_TIMESCALE_URL")
ADMIN_URL = (
    TIMESCALE_URL
    if MODE == "timescale" and TIMESCALE_URL
    else os.environ.get(
        "TRADESTORE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
)
REDIS_URL = os.environ.get("TRADESTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PGBOUNCER = os.environ.get("TRADESTORE_TEST_PGBOUNCER") == "1"
REDIS_CLUSTER = os.environ.get("TRADESTORE_TEST_REDIS_CLUSTER") == "1"
_cluster: RedisClusterServer | None = None  # started before collection when REDIS_CLUSTER
_bouncer: PgBouncer | None = None  # started by the session fixture when PGBOUNCER
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


def pytest_configure(config: pytest.Config) -> None:
    """With TRADESTORE_TEST_REDIS_CLUSTER=1, start the cluster before test modules are
    imported, so that their `from tests.conftest import REDIS_URL` names it."""
    global _cluster, REDIS_URL
    if REDIS_CLUSTER and _cluster is None:
        _cluster = RedisClusterServer()
        _cluster.start()
        REDIS_URL = _cluster.url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _cluster is not None:
        _cluster.stop()


def raw_redis(url: str | None = None) -> redis.Redis | redis.RedisCluster:
    """A plain synchronous client of the test Redis (a cluster client for a cluster)."""
    url = url or REDIS_URL
    if url.startswith("redis+cluster://"):
        host, port = url.removeprefix("redis+cluster://").split(",")[0].split(":")
        return redis.RedisCluster(host=host, port=int(port))
    return redis.Redis.from_url(url)


def database_url(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(name: str) -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@asynccontextmanager
async def open_stores(db_url: str, count: int) -> AsyncIterator[list[TradeStore]]:
    """`count` open stores on db_url, each with its own pool and Redis client (as many
    processes would have), all closed on exit: for tests that race real connections."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(TradeStore(make_settings(db_url))) for _ in range(count)
        ]


def make_settings(db_url: str | None, **overrides: object) -> Settings:
    direct: dict[str, object] = {}
    if _bouncer is not None and db_url is not None and _same_server(db_url, ADMIN_URL):
        direct = {"database_direct_url": db_url, "pgbouncer": True}
        db_url = _bouncer.url(urlsplit(db_url).path.lstrip("/"))
    values: dict[str, object] = {
        **direct,
        "database_url": db_url,
        "db_host": None,
        "redis_url": REDIS_URL,
        "redis_host": None,
        "redis_key_prefix": f"tstest:{uuid.uuid4().hex[:10]}:",
        "pool_min_size": 1,
        "pool_max_size": 10,
        "timeseries_mode": MODE,
        "event_relay": False,  # tests that relay start their own, on their own database
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _same_server(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.hostname, a.port) == (b.hostname, b.port)


@pytest.fixture(scope="session", autouse=True)
def _pgbouncer() -> Iterator[None]:
    """With TRADESTORE_TEST_PGBOUNCER=1, a PgBouncer in front of the test server."""
    global _bouncer
    if not PGBOUNCER:
        yield
        return
    parts = urlsplit(ADMIN_URL)
    _bouncer = PgBouncer(parts.hostname or "127.0.0.1", parts.port or 5432)
    _bouncer.start()
    yield
    _bouncer.stop()
    _bouncer = None


@pytest.fixture(scope="session", autouse=True)
def _servers_reachable() -> None:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL is unreachable at {ADMIN_URL}: {exc}", pytrace=False)
    try:
        raw_redis().ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is unreachable at {REDIS_URL}: {exc}", pytrace=False)


def migrate_database(url: str) -> str:
    """Apply every migration to the database at url; the url."""

    async def migrate() -> None:
        async with TradeStore(make_settings(url)) as store:
            await store.migrate()

    asyncio.run(migrate())
    return url


@pytest.fixture(scope="session")
def migrated_db_url() -> Iterator[str]:
    """One database for the run, migrated once; tests use unique names inside it."""
    name = f"tradestore_test_{RUN_ID}"
    yield migrate_database(create_database(name))
    drop_database(name)


@pytest.fixture
async def fresh_store(empty_database: Callable[[], str]) -> AsyncIterator[TradeStore]:
    """A store on a database of the test's own, migrated: for tests that count rows of
    a whole table, or change what other tests share."""
    settings = make_settings(empty_database())
    async with TradeStore(settings) as store:
        await store.migrate()
        yield store
    delete_keys(settings.redis_key_prefix)


@pytest.fixture
def empty_database() -> Iterator[Callable[[], str]]:
    """A factory of empty databases, dropped after the test."""
    names: list[str] = []

    def make() -> str:
        name = f"tradestore_test_{RUN_ID}_{len(names)}_{uuid.uuid4().hex[:4]}"
        names.append(name)
        return create_database(name)

    yield make
    for name in names:
        drop_database(name)


@pytest.fixture
def settings(migrated_db_url: str) -> Settings:
    return make_settings(migrated_db_url)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[TradeStore]:
    async with TradeStore(settings) as opened:
        yield opened
    delete_keys(settings.redis_key_prefix)


def delete_keys(prefix: str, url: str | None = None) -> None:
    client = raw_redis(url)
    for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
        client.delete(key)  # one at a time: a cluster's keys are on several nodes
    client.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(port=free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingests store closed history as rows, as they did before marketdata/ingest_blocks.py
    (which packs it into blocks): for tests of the row paths, the rollup triggers and the
    compaction of rows into blocks."""
    monkeypatch.setattr(Compactor, "ingest_horizon", lambda self, now=None: None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the other mode only are skipped, saying so."""
    for item in items:
        if MODE == "timescale" and item.get_closest_marker("native_only"):
            item.add_marker(pytest.mark.skip(reason="native mode only (run is timescale)"))
