"""system_config: typed values, categories, a change history, encrypted secrets.

- A value must match its key's declared data_type (string, number, boolean, object,
  array); the type is declared by the first `set` and kept after.
- Sensitive values are encrypted at rest (Fernet, key in TRADESTORE_CONFIG_KEY) in both
  system_config and its history; setting one without the key is a ConfigurationError,
  never a plain-text write. Listings and the CLI show them as "***" unless revealed.
- Every change is recorded in system_config_history and announced with a
  config.changed event (never carrying a sensitive value) in the same transaction.
- Reads go through the two-tier cache; a change invalidates it everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from psycopg.types.json import Jsonb

from tradestore.cache.two_tier import TwoTierCache
from tradestore.db.database import Database
from tradestore.errors import ConfigurationError, NotFound, ValidationError
from tradestore.realtime.events import EventType, append_event

REDACTED = "***"
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}

SELECT_ONE = "SELECT * FROM system_config WHERE key = %s"
LOCK_KEY = "SELECT pg_advisory_xact_lock(hashtext('tradestore.config'), hashtext(%s))"
LOCK_ONE = "SELECT * FROM system_config WHERE key = %s FOR UPDATE"
SELECT_ALL = """
SELECT * FROM system_config WHERE (%(category)s::text IS NULL OR category = %(category)s)
 ORDER BY category, key
"""
UPSERT = """
INSERT INTO system_config (key, value, description, category, data_type, is_sensitive,
                           updated_by)
VALUES (%(key)s, %(value)s, %(description)s, %(category)s, %(data_type)s, %(sensitive)s,
        %(by)s)
ON CONFLICT (key) DO UPDATE
   SET value = EXCLUDED.value,
       description = coalesce(EXCLUDED.description, system_config.description),
       category = EXCLUDED.category, is_sensitive = EXCLUDED.is_sensitive,
       updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING *
"""
HISTORY = """
INSERT INTO system_config_history (key, old_value, new_value, data_type, is_sensitive,
                                   changed_by)
VALUES (%s, %s, %s, %s, %s, %s)
"""
SELECT_HISTORY = """
SELECT * FROM system_config_history WHERE key = %s ORDER BY changed_at DESC, id DESC LIMIT %s
"""


@dataclass(frozen=True)
class ConfigEntry:
    key: str
    value: Any  # REDACTED for a sensitive value unless revealed
    data_type: str
    category: str
    description: str | None
    is_sensitive: bool
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True)
class ConfigChange:
    key: str
    old_value: Any
    new_value: Any
    changed_by: str | None
    changed_at: datetime


class ConfigStore:
    def __init__(self, db: Database, cache: TwoTierCache, key: str | None) -> None:
        self.db = db
        self.cache = cache
        self._fernet = _fernet(key)

    async def get(self, key: str, default: Any = NotFound, *, reveal: bool = True) -> Any:
        """The typed value (decrypted when sensitive); `default`, else NotFound."""
        entry = await self.entry(key, reveal=reveal)
        if entry is None:
            if default is NotFound:
                raise NotFound(f"no configuration value {key!r}")
            return default
        return entry.value

    async def get_days(self, key: str, default: timedelta) -> timedelta:
        """A duration stored as a positive number of days; default when the key is unset."""
        days = await self.get(key, None)
        if days is None:
            return default
        if not isinstance(days, int | float) or isinstance(days, bool) or days <= 0:
            raise ValidationError(
                f"config {key} must be a positive number of days", field=key, value=days
            )
        return timedelta(days=days)

    async def entry(self, key: str, *, reveal: bool = False) -> ConfigEntry | None:
        async def load() -> dict[str, Any] | None:
            row = await self.db.query_one(SELECT_ONE, (key,))
            return None if row is None else dict(row)

        row = await self.cache.get_or_load(f"config:{key}", load)
        return None if row is None else self._entry(row, reveal=reveal)

    async def set(
        self,
        key: str,
        value: Any,
        *,
        data_type: str | None = None,
        category: str = "general",
        description: str | None = None,
        sensitive: bool | None = None,
        changed_by: str | None = None,
    ) -> ConfigEntry:
        _check_key(key)
        async with self.db.transaction() as conn:
            # the key's lock even before it exists: two first writers take turns, so the
            # second is type-checked against the first (FOR UPDATE locks no missing row)
            await conn.execute(LOCK_KEY, (key,))
            cur = await conn.execute(LOCK_ONE, (key,))
            old = await cur.fetchone()
            secret = bool(sensitive if sensitive is not None else (old and old["is_sensitive"]))
            declared = data_type or (old["data_type"] if old else _infer(value))
            if old is not None and declared != old["data_type"]:
                raise ValidationError(
                    f"{key}: declared as {old['data_type']}, not {declared}",
                    field=key,
                    value=declared,
                )
            _check_type(key, value, declared, secret=secret)
            stored = self._seal(value) if secret else value
            cur = await conn.execute(
                UPSERT,
                {
                    "key": key,
                    "value": Jsonb(stored),
                    "description": description,
                    "category": category
                    if old is None or category != "general"
                    else old["category"],
                    "data_type": declared,
                    "sensitive": secret,
                    "by": changed_by,
                },
            )
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                HISTORY,
                (
                    key,
                    None if old is None else Jsonb(old["value"]),
                    Jsonb(stored),
                    declared,
                    secret,
                    changed_by,
                ),
            )
            await append_event(
                conn,
                EventType.CONFIG_CHANGED,
                {
                    "key": key,
                    "category": row["category"],
                    "sensitive": secret,
                    "value": REDACTED if secret else value,
                    "changed_by": changed_by,
                },
            )
        await self.cache.invalidate(f"config:{key}")
        return self._entry(dict(row), reveal=False)

    async def delete(self, key: str, *, changed_by: str | None = None) -> bool:
        async with self.db.transaction() as conn:
            cur = await conn.execute("DELETE FROM system_config WHERE key = %s RETURNING *", (key,))
            old = await cur.fetchone()
            if old is None:
                return False
            await conn.execute(
                HISTORY,
                (key, Jsonb(old["value"]), None, old["data_type"], old["is_sensitive"], changed_by),
            )
            await append_event(
                conn,
                EventType.CONFIG_CHANGED,
                {"key": key, "deleted": True, "changed_by": changed_by},
            )
        await self.cache.invalidate(f"config:{key}")
        return True

    async def entries(
        self, category: str | None = None, *, reveal: bool = False
    ) -> list[ConfigEntry]:
        rows = await self.db.query(SELECT_ALL, {"category": category})
        return [self._entry(dict(r), reveal=reveal) for r in rows]

    async def history(
        self, key: str, *, limit: int = 50, reveal: bool = False
    ) -> list[ConfigChange]:
        rows = await self.db.query(SELECT_HISTORY, (key, limit))
        return [
            ConfigChange(
                r["key"],
                self._show(r["old_value"], r["is_sensitive"], reveal),
                self._show(r["new_value"], r["is_sensitive"], reveal),
                r["changed_by"],
                r["changed_at"],
            )
            for r in rows
        ]

    # --- encryption ------------------------------------------------------------------------
    def _seal(self, value: Any) -> dict[str, str]:
        if self._fernet is None:
            raise ConfigurationError(
                "cannot store a sensitive value: TRADESTORE_CONFIG_KEY is not set (create one "
                'with `python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`)'
            )
        token = self._fernet.encrypt(json.dumps(value).encode()).decode()
        return {"$enc": token}

    def _open(self, stored: Any) -> Any:
        if self._fernet is None:
            raise ConfigurationError(
                "cannot read a sensitive value: TRADESTORE_CONFIG_KEY is not set"
            )
        try:
            return json.loads(self._fernet.decrypt(stored["$enc"].encode()))
        except InvalidToken:
            raise ConfigurationError(
                "cannot decrypt a sensitive value: TRADESTORE_CONFIG_KEY "
                "is not the key it was written with"
            ) from None

    def _show(self, stored: Any, sensitive: bool, reveal: bool) -> Any:
        if stored is None or not sensitive:
            return stored
        return self._open(stored) if reveal else REDACTED

    def _entry(self, row: dict[str, Any], *, reveal: bool) -> ConfigEntry:
        return ConfigEntry(
            row["key"],
            self._show(row["value"], row["is_sensitive"], reveal),
            row["data_type"],
            row["category"],
            row["description"],
            row["is_sensitive"],
            row["updated_at"],
            row["updated_by"],
        )


def _fernet(key: str | None) -> Fernet | None:
    if not key:
        return None
    try:
        return Fernet(key.encode())
    except ValueError:
        raise ConfigurationError(
            "TRADESTORE_CONFIG_KEY is not a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def _infer(value: Any) -> str:
    for name, kinds in TYPES.items():
        if isinstance(value, kinds) and not (name == "number" and isinstance(value, bool)):
            return name
    raise ValidationError(f"unsupported value type {type(value).__name__}", value=value)


def _check_type(key: str, value: Any, data_type: str, *, secret: bool = False) -> None:
    if data_type not in TYPES:
        raise ValidationError(
            f"data_type must be one of {', '.join(TYPES)}", field="data_type", value=data_type
        )
    ok = isinstance(value, TYPES[data_type]) and not (
        data_type == "number" and isinstance(value, bool)
    )
    if not ok:
        shown = f"a {type(value).__name__}" if secret else repr(value)  # never echo a secret
        raise ValidationError(
            f"{key}: {shown} is not a {data_type}", field=key, value=REDACTED if secret else value
        )


def _check_key(key: str) -> None:
    if not key or len(key) > 100:
        raise ValidationError("config key: 1 to 100 characters", field="key", value=key)
