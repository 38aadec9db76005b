"""Migrations: from empty, again, raced, dry run, edited-file detection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.conftest import MODE, make_settings, open_stores
from tradestore import MigrationError, TradeStore
from tradestore.db.migrator import available_migrations


async def test_migrate_from_empty_then_again(empty_database: Callable[[], str]) -> None:
    async with TradeStore(make_settings(empty_database())) as store:
        status = await store.migration_status()
        assert status.applied == [] and status.pending == list(available_migrations())

        first = await store.migrate()
        assert first.applied == list(available_migrations())
        assert first.mode.value == MODE

        second = await store.migrate()
        assert second.applied == []

        status = await store.migration_status()
        assert [m.name for m in status.applied] == list(available_migrations())
        assert status.pending == []
        assert all(len(m.checksum) == 64 and m.duration_ms >= 0 for m in status.applied)


async def test_dry_run_changes_nothing(empty_database: Callable[[], str]) -> None:
    async with TradeStore(make_settings(empty_database())) as store:
        result = await store.migrate(dry_run=True)
        assert result.dry_run and result.applied == list(available_migrations())
        assert await store.db.query_value("SELECT to_regclass('schema_migrations')") is None
        assert await store.db.query_value("SELECT to_regclass('strategies')") is None


async def test_two_concurrent_migrators_apply_each_migration_once(
    empty_database: Callable[[], str],
) -> None:
    url = empty_database()
    async with open_stores(url, 3) as stores:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        applied = [name for r in results for name in r.applied]
        assert sorted(applied) == sorted(available_migrations())  # each exactly once overall
        rows = await stores[0].db.query(
            "SELECT migration_name, count(*) AS n FROM schema_migrations GROUP BY 1"
        )
        assert {r["migration_name"]: r["n"] for r in rows} == dict.fromkeys(
            available_migrations(), 1
        )


async def test_edited_applied_migration_is_an_error_naming_it(
    empty_database: Callable[[], str],
) -> None:
    async with TradeStore(make_settings(empty_database())) as store:
        await store.migrate()
        # Simulate the file having been edited after it was applied.
        await store.db.execute(
            "UPDATE schema_migrations SET checksum = repeat('0', 64) "
            "WHERE migration_name = '0001_core'"
        )
        with pytest.raises(MigrationError, match=r"0001_core .*changed after it was applied"):
            await store.migrate()


async def test_failed_migration_rolls_back_and_names_itself(
    empty_database: Callable[[], str],
) -> None:
    async with TradeStore(make_settings(empty_database())) as store:
        # A table in the way makes 0001 fail half-way; nothing of it may remain.
        await store.db.execute("CREATE TABLE backtests (x int)")
        with pytest.raises(MigrationError, match="0001_core failed"):
            await store.migrate()
        assert await store.db.query_value("SELECT to_regclass('strategies')") is None
        assert await store.db.query_value("SELECT count(*) FROM schema_migrations") == 0


async def test_status_reports_mode_after_migrate(store: TradeStore) -> None:
    status = await store.migration_status()
    assert status.mode is not None and status.mode.value == MODE
    assert status.pending == []
