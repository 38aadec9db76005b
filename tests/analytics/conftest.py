"""The analytics suite runs on a database whose default TimeZone is America/New_York:
tradestore must work in UTC whatever the server's or database's time zone."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.conftest import (
    ADMIN_URL,
    RUN_ID,
    create_database,
    drop_database,
    make_settings,
    migrate_database,
)
from tradestore import Settings

SERVER_TIMEZONE = "America/New_York"


@pytest.fixture(scope="session")
def new_york_db_url() -> Iterator[str]:
    name = f"tradestore_test_{RUN_ID}_ny"
    url = create_database(name)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET TimeZone = {}").format(
                sql.Identifier(name), sql.Literal(SERVER_TIMEZONE)
            )
        )
    yield migrate_database(url)
    drop_database(name)


@pytest.fixture
def settings(new_york_db_url: str) -> Settings:
    return make_settings(new_york_db_url)
