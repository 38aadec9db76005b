"""Auto mode on a server where TimescaleDB is installed but not preloaded (a common
packaging state): detected before CREATE EXTENSION can end the connection, warned once,
native partitioning used; and TimescaleDB chosen when it is preloaded.

Needs the bin directory of a PostgreSQL with the timescaledb extension installed
(TRADESTORE_TEST_TIMESCALE_BINDIR): the test starts private clusters from it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import delete_keys, make_settings
from tests.servers import PostgresServer
from tradestore import MigrationError, TradeStore
from tradestore.settings import TimeSeriesMode

BINDIR = os.environ.get("TRADESTORE_TEST_TIMESCALE_BINDIR")
pytestmark = [
    pytest.mark.timescale,
    pytest.mark.skipif(not BINDIR, reason="TRADESTORE_TEST_TIMESCALE_BINDIR is not set"),
]


def cluster(preload: bool) -> Iterator[PostgresServer]:
    assert BINDIR is not None
    settings = (
        {"shared_preload_libraries": "'timescaledb'", "timescaledb.telemetry_level": "off"}
        if preload
        else {}
    )
    server = PostgresServer(bindir=Path(BINDIR), settings=settings)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def unloaded() -> Iterator[PostgresServer]:
    yield from cluster(preload=False)


@pytest.fixture
def preloaded() -> Iterator[PostgresServer]:
    yield from cluster(preload=True)


async def test_installed_but_not_preloaded_falls_back_to_native_with_one_warning(
    unloaded: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(unloaded.url, timeseries_mode="auto")
    with caplog.at_level(logging.WARNING, logger="tradestore"):
        async with TradeStore(settings) as store:
            result = await store.migrate()
            assert result.mode is TimeSeriesMode.NATIVE
            assert (await store.migrate()).applied == []  # and it stays decided
            assert await store.db.query_value("SELECT count(*) FROM strategies") == 0
    warnings = [
        r.getMessage() for r in caplog.records if "shared_preload_libraries" in r.getMessage()
    ]
    assert len(warnings) == 1 and "using native partitioning" in warnings[0]
    delete_keys(settings.redis_key_prefix)


async def test_timescale_requested_but_not_preloaded_is_a_clear_error(
    unloaded: PostgresServer,
) -> None:
    settings = make_settings(unloaded.url, timeseries_mode="timescale")
    async with TradeStore(settings) as store:
        with pytest.raises(MigrationError, match="shared_preload_libraries"):
            await store.migrate()


async def test_preloaded_server_gets_timescale_in_auto_mode(preloaded: PostgresServer) -> None:
    settings = make_settings(preloaded.url, timeseries_mode="auto")
    async with TradeStore(settings) as store:
        assert (await store.migrate()).mode is TimeSeriesMode.TIMESCALE
        kinds = await store.db.query_value(
            "SELECT count(*) FROM timescaledb_information.hypertables"
        )
        assert kinds == 3  # market_data, portfolio_snapshots, system_logs
    delete_keys(settings.redis_key_prefix)
