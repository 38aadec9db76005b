"""system_config: typed values, history, encryption at rest, redaction, cache."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from cryptography.fernet import Fernet

from tests.conftest import make_settings
from tradestore import ConfigurationError, NotFound, TradeStore, ValidationError

KEY = Fernet.generate_key().decode()


def key_name() -> str:
    return f"test.{uuid.uuid4().hex[:8]}"


async def test_typed_values_categories_and_history(store: TradeStore) -> None:
    name = key_name()
    await store.config.set(name, 5, category="risk", changed_by="alice")
    assert await store.config.get(name) == 5
    with pytest.raises(ValidationError, match="is not a number"):
        await store.config.set(name, "five")
    with pytest.raises(ValidationError, match="declared as number"):
        await store.config.set(name, "five", data_type="string")
    with pytest.raises(ValidationError, match="not a boolean"):
        await store.config.set(key_name(), 1, data_type="boolean")
    await store.config.set(name, 7.5, changed_by="bob")
    history = await store.config.history(name)
    assert [(h.old_value, h.new_value, h.changed_by) for h in history] == [
        (5, 7.5, "bob"),
        (None, 5, "alice"),
    ]
    assert name in {e.key for e in await store.config.entries("risk")}
    assert await store.config.get("missing.key", None) is None
    with pytest.raises(NotFound):
        await store.config.get("missing.key")
    assert await store.config.delete(name) and await store.config.get(name, None) is None


async def test_sensitive_values_are_encrypted_and_redacted(migrated_db_url: str) -> None:
    secret = f"sk-live-{uuid.uuid4().hex}"
    name = key_name()
    async with TradeStore(make_settings(migrated_db_url, config_key=KEY)) as store:
        await store.config.set(name, secret, sensitive=True, category="exchange")
        assert await store.config.get(name) == secret
        entry = await store.config.entry(name)
        assert entry is not None and entry.value == "***"
        dump = await store.db.query_value(
            "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM system_config UNION ALL "
            "SELECT key, new_value, null, null, data_type, is_sensitive, changed_at, "
            "changed_at, changed_by FROM system_config_history) t"
        )
        events = await store.db.query_value(
            "SELECT string_agg(payload::text, ' ') FROM event_outbox"
        )
        assert secret not in dump and secret not in events
        assert [h.new_value for h in await store.config.history(name)] == ["***"]
    env = dict(os.environ, DATABASE_URL=migrated_db_url, REDIS_URL="", TRADESTORE_CONFIG_KEY=KEY)
    for args in (["config", "list"], ["config", "get", name]):
        out = subprocess.run(  # noqa: ASYNC221 - a CLI run, on purpose
            [sys.executable, "-m", "tradestore", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        assert secret not in out.stdout + out.stderr and "***" in out.stdout


async def test_sensitive_without_a_key_is_a_clear_error(store: TradeStore) -> None:
    name = key_name()
    with pytest.raises(ConfigurationError, match="TRADESTORE_CONFIG_KEY is not set"):
        await store.config.set(name, "plain", sensitive=True)
    assert await store.config.get(name, None) is None  # nothing written in plain text


async def test_change_invalidates_the_cache_of_another_store(migrated_db_url: str) -> None:
    name = key_name()
    settings = make_settings(migrated_db_url)
    async with TradeStore(settings) as a, TradeStore(settings) as b:
        await a.config.set(name, {"max": 1})
        assert await b.config.get(name) == {"max": 1}
        await a.config.set(name, {"max": 2})
        for _ in range(100):
            if await b.config.get(name) == {"max": 2}:
                break
            import asyncio

            await asyncio.sleep(0.01)
        assert await b.config.get(name) == {"max": 2}


async def test_a_wrong_typed_secret_is_not_echoed(migrated_db_url: str) -> None:
    name = key_name()
    async with TradeStore(make_settings(migrated_db_url, config_key=KEY)) as store:
        await store.config.set(name, "sk-first", sensitive=True)
        with pytest.raises(ValidationError) as caught:
            await store.config.set(name, 98765432123)
        assert "98765432123" not in str(caught.value) + repr(caught.value.value)
        assert "is not a string" in str(caught.value)


async def test_concurrent_first_writes_of_a_key_are_type_checked(store: TradeStore) -> None:
    """Two writers race to create one key with values of different types: the first
    declares the type and the second is checked against it, never both accepted."""
    import asyncio

    for _ in range(10):
        name = key_name()
        results = await asyncio.gather(
            store.config.set(name, 5), store.config.set(name, "five"), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], ValidationError), results
        history = await store.config.history(name)
        assert [h.old_value for h in history] == [None]  # one first write, not two
