"""`tradestore demo` never touches data it did not create: it runs in its own database
and Redis prefix, even when DATABASE_URL names a database holding a user's data."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg import sql

from tests.conftest import (
    ADMIN_URL,
    REDIS_URL,
    create_database,
    delete_keys,
    drop_database,
    make_settings,
)
from tests.e2e.runner import clean_env, run_cli
from tradestore import ConfigurationError, TradeStore
from tradestore.demo import DEMO_DATABASE, recreate_demo_database


def test_demo_leaves_the_configured_database_and_redis_prefix_untouched() -> None:
    name = f"tradestore_user_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    prefix = f"tsuser:{uuid.uuid4().hex[:8]}:"
    settings = make_settings(url, redis_key_prefix=prefix)

    async def user_data() -> tuple[object, int]:
        async with TradeStore(settings) as store:
            await store.migrate()
            if await store.config.get("risk.max_position_usd", None) is None:
                await store.config.set("risk.max_position_usd", 12345)
            value = await store.config.get("risk.max_position_usd")
            count = await store.db.query_value("SELECT count(*) FROM strategies")
            return value, int(count)

    try:
        before = asyncio.run(user_data())
        env = clean_env(DATABASE_URL=url, REDIS_URL=REDIS_URL, TRADESTORE_REDIS_PREFIX=prefix)
        result = run_cli("demo", env=env, timeout_s=300)
        assert result.returncode == 0, result.stderr
        assert f"database {DEMO_DATABASE}" in result.stdout
        widest = max(len(line) for line in result.stdout.splitlines())
        assert widest < 1000, "piped output is padded to the console's 100,000 columns"
        assert asyncio.run(user_data()) == before == (12345, 0)
    finally:
        drop_database(name)
        delete_keys(prefix)


async def test_a_database_of_that_name_not_made_by_the_demo_is_refused() -> None:
    name = f"tradestore_demo_test_{uuid.uuid4().hex[:8]}"
    create_database(name)
    try:
        with pytest.raises(ConfigurationError, match="the demo did not make it"):
            await recreate_demo_database(ADMIN_URL, name)
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            assert conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone(), "the foreign database must survive"
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        made = await recreate_demo_database(ADMIN_URL, name)  # now it is the demo's own
        again = await recreate_demo_database(ADMIN_URL, name)  # and made anew
        assert made == again and made.endswith(f"/{name}")
    finally:
        drop_database(name)
