"""Behind a real PgBouncer in transaction pooling mode (a private one, in front of the
test server): the pool goes through it without prepared statements; migrations and the
maintenance lock use the direct URL (a session lock does not survive transaction
pooling); a role that is not in UTC is refused when the store opens."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.conftest import ADMIN_URL, make_settings
from tests.marketdata.helpers import candles, new_symbol
from tests.servers import PgBouncer
from tests.trading.helpers import new_strategy
from tradestore import ConfigurationError, TradeStore

pytestmark = pytest.mark.skipif(
    shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists(),
    reason="pgbouncer is not installed (.ci/run installs it)",
)


@pytest.fixture
def bouncer() -> Iterator[PgBouncer]:
    admin = urlsplit(ADMIN_URL)
    server = PgBouncer(admin.hostname or "127.0.0.1", admin.port or 5432)
    server.start()
    yield server
    server.stop()


def _through(bouncer: PgBouncer, direct_url: str) -> object:
    name = urlsplit(direct_url).path.lstrip("/")
    return make_settings(bouncer.url(name), database_direct_url=direct_url, pgbouncer=True)


async def test_the_store_works_through_pgbouncer(
    bouncer: PgBouncer, empty_database: Callable[[], str]
) -> None:
    direct = empty_database()
    async with TradeStore(_through(bouncer, direct)) as store:  # type: ignore[arg-type]
        result = await store.migrate()  # the advisory lock held on the direct URL
        assert result.applied
        with psycopg.connect(bouncer.url("pgbouncer"), autocommit=True) as admin:
            clients = admin.execute("SHOW CLIENTS").fetchall()
        name = urlsplit(direct).path.lstrip("/")
        assert any(name in row for row in clients)  # the store's pool is PgBouncer's client
        strategy = await new_strategy(store)
        order = await store.orders.create(
            {
                "strategy_id": strategy.id,
                "symbol": "BTC-USD",
                "side": "BUY",
                "type": "MARKET",
                "quantity": "1",
            }
        )
        await store.orders.record_fill(order.id, quantity="1", price="100")
        symbol = new_symbol()
        start = datetime(2024, 1, 1, tzinfo=UTC)
        stored = await store.market_data.store_candles(symbol, "1m", candles(3000, start=start))
        assert stored.inserted == 3000  # COPY through PgBouncer, chunk by chunk
        frame = await store.market_data.get_historical_data(
            symbol, "1m", start, start + timedelta(days=3)
        )
        assert len(frame) == 3000
        done = await store.maintenance.run()  # its lock on the direct URL, released after
        assert isinstance(done, list)
        async with store.session_db() as session:
            held = await session.query_value(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            )
        assert held == 0  # no session lock left behind on a pooled server connection


async def test_a_role_not_in_utc_is_refused_behind_pgbouncer(
    bouncer: PgBouncer, empty_database: Callable[[], str]
) -> None:
    direct = empty_database()
    name = urlsplit(direct).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'")
    with pytest.raises(ConfigurationError, match="not UTC"):
        async with TradeStore(_through(bouncer, direct)):  # type: ignore[arg-type]
            pass
