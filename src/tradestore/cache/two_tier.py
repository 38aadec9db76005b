"""TwoTierCache: in-process L1 + Redis L2, single-flight loads, invalidation after commit.

Consistency rules, and how they are kept:
- The writing process never reads an old value after its write returns: `invalidate`
  (called after commit, before the write returns) drops the L1 entry, bumps the key's
  local generation (a load that started earlier may not store its result) and detaches
  any in-flight load, so later readers start a fresh one.
- No process re-populates L2 with a value read before a write committed: every key has
  a version in Redis, incremented on invalidation; a loader stores its value only if the
  version is still the one it saw before reading the database (one Lua script).
- Other processes drop their L1 entry when the invalidation is published (pub/sub), within
  milliseconds. If the subscription breaks, L1 is cleared when it comes back; while Redis
  is away, L1 entries live at most `cache_l1_ttl_ms`.
- An invalidation Redis did not take (down, stalled) is not lost: until a supervised
  retry gets it through, this process reads the key from PostgreSQL only (its L2 copy
  may be old), and the retry bumps the version, deletes the copy and tells the others.
- With Redis down, reads go to PostgreSQL and writes succeed; RedisLink warns once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from cachetools import LRUCache
from pydantic import TypeAdapter

from tradestore.cache import codec
from tradestore.cache.local import LocalCache
from tradestore.keys import Keys
from tradestore.redis_link import REDIS_ERRORS, RedisLink
from tradestore.supervisor import Supervised

log = logging.getLogger(__name__)

T = TypeVar("T")
_MISSING = object()
_UNAVAILABLE = object()
VERSION_TTL_MS = 86_400_000  # a version outlives any load by far
LISTEN_POLL_S = 1.0

# KEYS[1] value key, KEYS[2] version key; ARGV[1] version seen before loading,
# ARGV[2] encoded value, ARGV[3] ttl ms. Stores only if no invalidation happened since.
STORE_IF_VERSION = """
local current = redis.call('GET', KEYS[2]) or '0'
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# KEYS: pairs of a version key and its value key. For each: a load that read before
# cannot store its value, and the copy is gone, in one step (a reader never sees the
# bump without the deletion). ARGV[2], ARGV[3] (one Redis only): a channel and the
# message to publish on it once every key is done.
BUMP_AND_DROP = """
for i = 1, #KEYS, 2 do
  redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
  redis.call('DEL', KEYS[i + 1])
end
if ARGV[2] then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 1
"""


class TwoTierCache:
    def __init__(
        self,
        link: RedisLink,
        keys: Keys,
        *,
        l1_max_items: int,
        l1_ttl_ms: int,
        l2_ttl_ms: int,
    ) -> None:
        self.link = link
        self.keys = keys
        self.local = LocalCache(max_items=l1_max_items, ttl_s=l1_ttl_ms / 1000)
        # key -> (the L2 bytes last decoded, the value they gave): an L1 entry that
        # expired is mostly read back from L2 unchanged, and then not decoded again
        self._decoded: LRUCache[str, tuple[bytes, Any]] = LRUCache(maxsize=l1_max_items)
        self.l2_ttl_ms = l2_ttl_ms
        self.channel = keys.key("cache-invalidate")
        self.node_id = uuid.uuid4().hex
        self._generation: dict[str, int] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self.listener = Supervised("cache invalidation listener", self._listen, logger=log)
        self.retrier = Supervised("cache invalidation retry", self._retry_invalidations, logger=log)
        self._unpublished: set[str] = set()  # invalidations Redis has not taken yet
        self.stats = {"l1_hits": 0, "l2_hits": 0, "loads": 0}

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.link.client is not None:
            self.listener.start()

    async def stop(self, timeout_s: float = 1.0) -> None:
        """Stop listening (and retrying) within timeout_s; never raises."""
        await asyncio.gather(self.listener.stop(timeout_s), self.retrier.stop(timeout_s))

    # --- reads ------------------------------------------------------------------------------
    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        adapter: TypeAdapter[Any] | None = None,
        ttl_ms: int | None = None,
    ) -> T:
        """The cached value of key, else `loader()`'s, loaded once however many ask at once.

        With `adapter` (pydantic, built once by the caller: a model or a list of models),
        L2 holds the value as that adapter's JSON and reads it back with its compiled JSON
        validator; without, as `codec` writes it. A loader result of None is not cached.
        """
        while True:
            hit = self.local.get(key, _MISSING)
            if hit is not _MISSING:
                self.stats["l1_hits"] += 1
                return hit  # type: ignore[no-any-return]
            pending = self._inflight.get(key)
            if pending is None:
                return await self._lead(key, loader, adapter, ttl_ms)
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if _we_are_cancelled() or not pending.cancelled():
                    raise
                # the leader was cancelled, not us: load again (one follower leads)

    async def _lead(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        adapter: TypeAdapter[Any] | None,
        ttl_ms: int | None,
    ) -> T:
        """Load key for everyone waiting on it. If this task is cancelled, the waiters
        see the future cancelled and one of them loads again."""
        pending: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = pending
        try:
            value = await self._load(key, loader, adapter, ttl_ms)
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        except BaseException:
            pending.cancel()
            raise
        else:
            pending.set_result(value)
            return value
        finally:
            if self._inflight.get(key) is pending:
                del self._inflight[key]

    async def _load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T]],
        adapter: TypeAdapter[Any] | None,
        ttl_ms: int | None,
    ) -> T:
        generation = self._generation.get(key, 0)
        raw = await self._l2_get(key)
        cached = _MISSING if raw is None else self._decode(key, raw, adapter)
        if cached is not _MISSING:
            value = cast(T, cached)
            self.stats["l2_hits"] += 1
        else:
            self.stats["loads"] += 1
            # read before the database: an invalidation after this read makes the store
            # below a no-op, one before it committed first (a hit needs no version)
            version = await self._l2_version(key)
            value = await loader()
            if value is not None and version is not None:
                encoded = codec.dumps(value) if adapter is None else adapter.dump_json(value)
                await self._l2_store(key, version, encoded, ttl_ms or self.l2_ttl_ms)
                self._decoded[key] = (encoded, value)  # what those bytes decode to
        if value is not None and self._generation.get(key, 0) == generation:
            self.local.set(key, value)
        return value

    def _decode(self, key: str, raw: bytes, adapter: TypeAdapter[Any] | None) -> Any:
        """The value of key's L2 bytes: the one decoded last time when the bytes are the
        same (values are immutable models or shared like L1's), else decoded now."""
        last = self._decoded.get(key)
        if last is not None and last[0] == raw:
            return last[1]
        value = _decode(raw, adapter)
        if value is not _MISSING:
            self._decoded[key] = (raw, value)
        return value

    # --- invalidation --------------------------------------------------------------------
    async def invalidate(self, *keys: str) -> None:
        """Forget keys everywhere. Call after the change committed, before returning.

        If Redis cannot be told (down, stalled), the keys stay pending: this process reads
        them from PostgreSQL only (never an L2 copy that may be old) and a supervised
        retry publishes the invalidation as soon as Redis answers again."""
        self._forget_locally(keys)
        if self.link.client is None:
            return
        self._unpublished.update(keys)
        try:
            await self._publish_invalidation(list(keys))
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            self.retrier.start()
            return
        self._unpublished.difference_update(keys)

    async def _publish_invalidation(self, keys: list[str]) -> None:
        """Bump each key's version and delete its L2 copy, then tell the other processes.
        The message goes after the bumps: a process that reloads on it cannot find the old
        copy. On one Redis, all of it is one script: one command. A cluster's keys live on
        different nodes: one script a key (a key's two Redis keys share a hash tag), and
        the message after them all."""
        client = self.link.client
        if client is None:
            return
        message = json.dumps({"from": self.node_id, "keys": keys})
        pairs = [[self._version_key(key), self._value_key(key)] for key in keys]
        if not self.link.settings.redis_is_cluster:
            names = [name for pair in pairs for name in pair]
            await client.eval(
                BUMP_AND_DROP, len(names), *names, VERSION_TTL_MS, self.channel, message
            )
            return
        async with client.pipeline(transaction=False) as pipe:
            for pair in pairs:
                pipe.eval(BUMP_AND_DROP, 2, *pair, VERSION_TTL_MS)
            await pipe.execute()
        await client.execute_command("PUBLISH", self.channel, message)  # any redis-py

    async def _retry_invalidations(self) -> None:
        while self._unpublished and not self.retrier.stopping:
            keys = sorted(self._unpublished)
            try:
                await self._publish_invalidation(keys)
            except REDIS_ERRORS as exc:
                self.link.failed(exc)
                raise
            self._unpublished.difference_update(keys)
            self.link.recovered()
            self.retrier.healthy()

    def _forget_locally(self, keys: tuple[str, ...] | list[str]) -> None:
        for key in keys:
            self.local.delete(key)
            self._decoded.pop(key, None)
            self._generation[key] = self._generation.get(key, 0) + 1
            self._inflight.pop(key, None)

    async def _listen(self) -> None:
        """Drop L1 entries that other processes invalidate. Polls with a timeout rather
        than blocking in `listen()`, so a stop is noticed within LISTEN_POLL_S."""
        if self.link.client is None:
            return
        try:
            async with self.link.pubsub("cache invalidation") as pubsub:
                await pubsub.subscribe(self.channel)
                self.local.clear()  # whatever we missed while not listening
                self.listener.healthy()
                self.link.recovered()
                while not self.listener.stopping:
                    message = await pubsub.get_message(timeout=LISTEN_POLL_S)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            self.local.clear()
            raise

    def _on_message(self, data: bytes | str) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            return
        if body.get("from") != self.node_id:
            self._forget_locally([str(k) for k in body.get("keys", [])])

    # --- L2 ---------------------------------------------------------------------------------
    def _value_key(self, key: str) -> str:
        return self.keys.tagged("cache", key)

    def _version_key(self, key: str) -> str:
        return self.keys.tagged("cache-version", key)

    async def _l2_get(self, key: str) -> bytes | None:
        """The L2 copy of key; None when there is none or L2 is unavailable. A key whose
        invalidation is still pending skips L2: its copy there may be old."""
        raw = await self._l2_read(key, self._value_key(key))
        return None if raw is _UNAVAILABLE else _bytes(raw)

    async def _l2_version(self, key: str) -> str | None:
        """Key's version in Redis ("0" before its first invalidation); None means L2 is
        unavailable: do not store."""
        version = await self._l2_read(key, self._version_key(key))
        if version is _UNAVAILABLE:
            return None
        return _text(version) if version else "0"

    async def _l2_read(self, key: str, name: str) -> Any:
        """GET name, for key; _UNAVAILABLE when Redis is not there or key's invalidation
        is still pending."""
        client = self.link.client
        if client is None or key in self._unpublished:
            return _UNAVAILABLE
        try:
            value = await client.get(name)
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            return _UNAVAILABLE
        self.link.recovered()
        return value

    async def _l2_store(self, key: str, version: str, encoded: bytes, ttl_ms: int) -> None:
        client = self.link.client
        if client is None:
            return
        try:
            await client.eval(
                STORE_IF_VERSION,
                2,
                self._value_key(key),
                self._version_key(key),
                version,
                encoded,
                str(ttl_ms),
            )
        except REDIS_ERRORS as exc:
            self.link.failed(exc)


def _decode(raw: bytes, adapter: TypeAdapter[Any] | None) -> Any:
    """The value an L2 entry holds, or _MISSING when it cannot be read (written by
    another version of tradestore, say): then the key is loaded and stored again."""
    try:
        return codec.loads(raw) if adapter is None else adapter.validate_json(raw)
    except ValueError as exc:  # pydantic's ValidationError and JSON errors are ValueErrors
        log.warning("unreadable cache entry, loading it again: %s", str(exc).partition("\n")[0])
        return _MISSING


def _we_are_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
