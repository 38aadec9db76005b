"""Per-strategy key/value state in Redis, versioned for compare-and-set.

Every write bumps the key's version. `set(..., expected_version=n)` succeeds only if
the stored version is still n (0 = the key must not exist), so two workers cannot
silently overwrite each other: the loser gets a Conflict and re-reads. `snapshot()`
copies a strategy's state to PostgreSQL (table strategy_state); `restore()` puts it
back in Redis after a flush, never over a newer version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from redis.exceptions import RedisError

from tradestore.db.database import Database
from tradestore.errors import Conflict, TransientError, ValidationError
from tradestore.keys import Keys
from tradestore.redis_link import RedisLink

# KEYS[1] the state key; ARGV value json, expected version ('' = any), ttl ms ('0' = none)
CAS_SET = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= current then
  return {0, current}
end
local version = current + 1
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', version)
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return {1, version}
"""
# Restore only where Redis has nothing newer. ARGV value json, version.
RESTORE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', ARGV[2])
return 1
"""
UPSERT_SNAPSHOT = """
INSERT INTO strategy_state (strategy_id, key, value, version, snapshot_at)
VALUES (%s, %s, %s, %s, now())
ON CONFLICT (strategy_id, key) DO UPDATE
   SET value = EXCLUDED.value, version = EXCLUDED.version, snapshot_at = now()
 WHERE strategy_state.version <= EXCLUDED.version
"""
SELECT_SNAPSHOT = "SELECT key, value, version FROM strategy_state WHERE strategy_id = %s"


@dataclass(frozen=True)
class StateValue:
    value: Any
    version: int


class StrategyState:
    def __init__(self, link: RedisLink, keys: Keys, db: Database) -> None:
        self.link = link
        self.keys = keys
        self.db = db

    async def get(self, strategy_id: UUID, key: str) -> StateValue | None:
        raw = await self._call(lambda c: c.hmget(self._key(strategy_id, key), "value", "version"))
        if raw[0] is None:
            return None
        return StateValue(json.loads(raw[0]), int(raw[1]))

    async def set(
        self,
        strategy_id: UUID,
        key: str,
        value: Any,
        *,
        expected_version: int | None = None,
        ttl_s: float | None = None,
    ) -> int:
        """Store value; returns the new version. With expected_version, a Conflict when
        another writer got there first."""
        encoded = _json(value)
        args = [
            encoded,
            "" if expected_version is None else str(expected_version),
            str(int((ttl_s or 0) * 1000)),
        ]
        ok, version = await self._call(
            lambda c: c.eval(CAS_SET, 1, self._key(strategy_id, key), *args)
        )
        if not int(ok):
            raise Conflict(
                f"state {key!r} of strategy {strategy_id} is at version {version}, "
                f"not {expected_version}: re-read and retry"
            )
        return int(version)

    async def delete(self, strategy_id: UUID, key: str) -> bool:
        return bool(await self._call(lambda c: c.delete(self._key(strategy_id, key))))

    async def items(self, strategy_id: UUID) -> dict[str, StateValue]:
        prefix = self._key(strategy_id, "")
        out: dict[str, StateValue] = {}
        client = self._client()
        try:
            async for raw_key in client.scan_iter(match=self.keys.pattern("state", strategy_id)):
                key_text = raw_key.decode()
                value, version = await client.hmget(raw_key, "value", "version")
                if value is not None:
                    name = _unescape(key_text[len(prefix) :])
                    out[name] = StateValue(json.loads(value), int(version))
        except (RedisError, OSError) as exc:
            raise self._down(exc) from exc
        return out

    async def snapshot(self, strategy_id: UUID) -> int:
        """Copy the strategy's state to PostgreSQL; returns how many keys were written."""
        items = await self.items(strategy_id)
        async with self.db.transaction() as conn:
            for name, item in items.items():
                await conn.execute(
                    UPSERT_SNAPSHOT, (strategy_id, name, Jsonb(item.value), item.version)
                )
        return len(items)

    async def restore(self, strategy_id: UUID) -> int:
        """Put snapshotted keys back where Redis has nothing newer; returns how many."""
        rows = await self.db.query(SELECT_SNAPSHOT, (strategy_id,))
        restored = 0
        for row in rows:
            restored += int(
                await self._call(
                    lambda c, r=row: c.eval(
                        RESTORE,
                        1,
                        self._key(strategy_id, r["key"]),
                        _json(r["value"]),
                        str(r["version"]),
                    )
                )
            )
        return restored

    async def _call(self, op: Any) -> Any:
        try:
            return await op(self._client())
        except (RedisError, OSError) as exc:
            raise self._down(exc) from exc

    def _client(self) -> Any:
        return self.link.require("strategy state")

    def _down(self, exc: BaseException) -> TransientError:
        return self.link.unavailable(exc, "strategy state")

    def _key(self, strategy_id: UUID, key: str) -> str:
        if len(key) > 200:
            raise ValidationError("state key: at most 200 characters", field="key", value=key)
        return self.keys.key("state", strategy_id, key)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except TypeError as exc:
        raise ValidationError(f"state value is not JSON: {exc}", field="value") from None


def _unescape(part: str) -> str:
    return part.replace("\\:", ":").replace("\\\\", "\\")
