"""Per-strategy key/value state in Redis, versioned for compare-and-set.

Every write bumps the key's version. `set(..., expected_version=n)` succeeds only if
the stored version is still n (0 = the key must not exist), so two workers cannot
silently overwrite each other: the loser gets a Conflict and re-reads.

Versions only grow: they come from a per-strategy counter hash (one field per key) that
outlives the value, so a key deleted or expired and set again continues from its last
version instead of restarting at 1. `snapshot()` copies a strategy's state to PostgreSQL
(table strategy_state) with each key's expiry time, and deletions as tombstones;
`restore()` puts it back after a Redis flush, never over a version as new or newer (a
deletion is newer than the value it deleted), never an expired key, and with the TTL it
had left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from tradestore.db.database import Database
from tradestore.errors import Conflict, TransientError, ValidationError
from tradestore.keys import Keys
from tradestore.redis_link import REDIS_ERRORS, RedisLink
from tradestore.trading.models import as_uuid

# KEYS[1] the state key, KEYS[2] the strategy's version counters; ARGV value json,
# expected version ('' = any), ttl ms ('0' = none), counter field.
CAS_SET = """
local exists = redis.call('HEXISTS', KEYS[1], 'value') == 1
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[2] ~= '' then
  local expected = tonumber(ARGV[2])
  if (expected == 0 and exists) or (expected ~= 0 and expected ~= current) then
    return {0, current}
  end
end
local version = redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
if version <= current then
  version = current + 1
  redis.call('HSET', KEYS[2], ARGV[4], version)
end
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', version)
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return {1, version}
"""
# KEYS as CAS_SET; ARGV counter field. The deletion takes a version of its own.
DELETE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
redis.call('DEL', KEYS[1])
local version = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if version <= current then redis.call('HSET', KEYS[2], ARGV[1], current + 1) end
return 1
"""
# Restore only where Redis knows nothing as new. KEYS as CAS_SET; ARGV value json
# ('' = a deletion), version, ttl ms ('0' = none), counter field.
RESTORE = """
local current = math.max(tonumber(redis.call('HGET', KEYS[1], 'version') or '0'),
                         tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0'))
if current >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[2])
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""
# KEYS[1] a state key: {value, version, ttl ms} read at one instant.
READ_WITH_TTL = """
local item = redis.call('HMGET', KEYS[1], 'value', 'version')
return {item[1], item[2], redis.call('PTTL', KEYS[1])}
"""
UPSERT_SNAPSHOT = """
INSERT INTO strategy_state (strategy_id, key, value, version, deleted, expires_at, snapshot_at)
VALUES (%s, %s, %s, %s, %s, %s, now())
ON CONFLICT (strategy_id, key) DO UPDATE
   SET value = EXCLUDED.value, version = EXCLUDED.version, deleted = EXCLUDED.deleted,
       expires_at = EXCLUDED.expires_at, snapshot_at = now()
 WHERE strategy_state.version <= EXCLUDED.version
"""
SELECT_SNAPSHOT = """
SELECT key, value, version, deleted, expires_at FROM strategy_state
 WHERE strategy_id = %s AND (expires_at IS NULL OR expires_at > now())
"""


@dataclass(frozen=True)
class StateValue:
    value: Any
    version: int
    expires_at: datetime | None = None  # filled by `items()` for keys with a TTL


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
        keys = self._keys(strategy_id, key)
        ok, version = await self._call(lambda c: c.eval(CAS_SET, 2, *keys, *args, key))
        if not int(ok):
            raise Conflict(
                f"state {key!r} of strategy {strategy_id} is at version {version}, "
                f"not {expected_version}: re-read and retry"
            )
        return int(version)

    async def delete(self, strategy_id: UUID, key: str) -> bool:
        """Delete the key (its next `set` continues from a newer version)."""
        keys = self._keys(strategy_id, key)
        return bool(await self._call(lambda c: c.eval(DELETE, 2, *keys, key)))

    async def items(self, strategy_id: UUID) -> dict[str, StateValue]:
        """Every live key of the strategy, with its expiry time when it has a TTL."""
        strategy_id = as_uuid(strategy_id, field="strategy_id")
        prefix = self._key(strategy_id, "")
        out: dict[str, StateValue] = {}
        client = self._client()
        pattern = self.keys.pattern_under(self.keys.tagged("state", strategy_id))
        try:
            async for raw_key in client.scan_iter(match=pattern):
                value, version, ttl_ms = await client.eval(READ_WITH_TTL, 1, raw_key)
                if value is not None:
                    name = _unescape(raw_key.decode()[len(prefix) :])
                    expires = _expiry(ttl_ms)
                    out[name] = StateValue(json.loads(value), int(version), expires)
        except REDIS_ERRORS as exc:
            raise self._down(exc) from exc
        return out

    async def snapshot(self, strategy_id: UUID) -> int:
        """Copy the strategy's state to PostgreSQL, deletions included (as tombstones);
        returns how many keys were written."""
        strategy_id = as_uuid(strategy_id, field="strategy_id")
        items = await self.items(strategy_id)
        versions = await self._call(lambda c: c.hgetall(self._versions_key(strategy_id)))
        tombstones = {
            _text(name): int(version)
            for name, version in versions.items()
            if _text(name) not in items
        }
        async with self.db.transaction() as conn:
            for name, item in items.items():
                row = (strategy_id, name, Jsonb(item.value), item.version, False, item.expires_at)
                await conn.execute(UPSERT_SNAPSHOT, row)
            for name, version in tombstones.items():
                row = (strategy_id, name, Jsonb(None), version, True, None)
                await conn.execute(UPSERT_SNAPSHOT, row)
        return len(items)

    async def restore(self, strategy_id: UUID) -> int:
        """Put snapshotted keys back where Redis knows nothing as new, with the TTL they
        had left (expired ones are not restored); returns how many values came back."""
        strategy_id = as_uuid(strategy_id, field="strategy_id")
        rows = await self.db.query(SELECT_SNAPSHOT, (strategy_id,))
        restored = 0
        for row in rows:
            value = "" if row["deleted"] else _json(row["value"])
            ttl_ms = _ttl_ms(row["expires_at"])
            keys = self._keys(strategy_id, row["key"])
            done = await self._call(
                lambda c, k=keys, v=value, r=row, t=ttl_ms: c.eval(
                    RESTORE, 2, *k, v, str(r["version"]), str(t), r["key"]
                )
            )
            restored += int(done) if value else 0
        return restored

    async def _call(self, op: Any) -> Any:
        try:
            return await op(self._client())
        except REDIS_ERRORS as exc:
            raise self._down(exc) from exc

    def _client(self) -> Any:
        return self.link.require("strategy state")

    def _down(self, exc: BaseException) -> TransientError:
        return self.link.unavailable(exc, "strategy state")

    def _key(self, strategy_id: UUID, key: str) -> str:
        """The key of one state value; tagged by strategy like its version counters."""
        if len(key) > 200:
            raise ValidationError("state key: at most 200 characters", field="key", value=key)
        return self.keys.tagged("state", as_uuid(strategy_id, field="strategy_id"), key)

    def _versions_key(self, strategy_id: UUID) -> str:
        return self.keys.tagged("state-versions", as_uuid(strategy_id, field="strategy_id"))

    def _keys(self, strategy_id: UUID, key: str) -> tuple[str, str]:
        return self._key(strategy_id, key), self._versions_key(strategy_id)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except TypeError as exc:
        raise ValidationError(f"state value is not JSON: {exc}", field="value") from None


def _unescape(part: str) -> str:
    return part.replace("\\:", ":").replace("\\\\", "\\")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _expiry(ttl_ms: int) -> datetime | None:
    return None if ttl_ms < 0 else datetime.now(UTC) + timedelta(milliseconds=ttl_ms)


def _ttl_ms(expires_at: datetime | None) -> int:
    """The TTL left until expires_at (at least 1 ms: the row was selected unexpired)."""
    if expires_at is None:
        return 0
    return max(1, int((expires_at - datetime.now(UTC)).total_seconds() * 1000))
