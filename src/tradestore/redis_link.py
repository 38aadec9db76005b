"""The Redis connection, and the rule that Redis trouble never stops tradestore.

Services ask `link.client` for a client (None when Redis is not configured) and report
failures through `link.failed(exc)`: the first failure of an outage is logged once as a
warning, the next success logs the recovery. Nothing here ever raises for Redis trouble.

A Redis Cluster (`redis+cluster://h1:p1,h2:p2`, or REDIS_CLUSTER=1) gets a cluster
client, which routes each command by its key's slot and follows failovers. What the
services do works on both: keys that one script touches together share a hash tag
(`Keys.tagged`), nothing uses MULTI, and subscriptions go through `pubsub()`, which in a
cluster subscribes on one node (PUBLISH reaches every node of a cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from tradestore.errors import TransientError
from tradestore.settings import Settings, cluster_nodes, mask_url

log = logging.getLogger(__name__)

RedisClient = aioredis.Redis | RedisCluster
# what a Redis call may raise when Redis is away (a cluster client's own exception, e.g.
# "no reachable node", is not a RedisError)
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)


def end_if_cancelled() -> None:
    """Raise CancelledError when this task has been asked to stop. redis-py can swallow a
    cancellation that lands while it reads a reply (the task stays marked as cancelling,
    and the call returns or raises a Redis error instead). A loop that calls Redis again
    would then never end, so loops check this after every call."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(frozen=True)
class RedisHealth:
    ok: bool
    latency_ms: float | None
    detail: str


class RedisLink:
    def __init__(self, settings: Settings, client: RedisClient | None = None) -> None:
        self.settings = settings
        self.url = settings.redis_connection_url()
        self._owns_client = client is None
        self.client: RedisClient | None = client
        self._degraded_since: float | None = None
        self._node_options: dict[str, Any] = {}  # of a cluster's nodes (credentials, TLS)
        self._announced = False

    @property
    def configured(self) -> bool:
        return self.client is not None

    @property
    def degraded(self) -> bool:
        return self.client is None or self._degraded_since is not None

    async def open(self) -> None:
        if self.client is None and self.url is not None:
            self.client = self._connect(self.url)
        if self.client is None:
            self._announce(
                "Redis is not configured (set REDIS_URL): using the in-process cache only"
            )
            return
        health = await self.health()
        if not health.ok:
            self.failed_message(
                f"Redis at {mask_url(self.url or '?')} is unreachable ({health.detail})"
            )

    def _connect(self, url: str) -> RedisClient:
        if not self.settings.redis_is_cluster:
            return aioredis.Redis.from_url(url, **self._client_options())
        nodes, auth = cluster_nodes(url)
        self._node_options = {**auth, **self._client_options()}
        startup = [ClusterNode(host, port) for host, port in nodes]
        return RedisCluster(startup_nodes=startup, **self._node_options)

    @contextlib.asynccontextmanager
    async def pubsub(self, service: str) -> AsyncIterator[PubSub]:
        """A PubSub for a service that subscribes (TransientError without Redis), closed on
        exit. In a cluster it is connected to a node picked at random, so that a subscriber
        that lost its node lands on another one when it subscribes again; that node's client
        is closed on exit too, since a subscribe cancelled while connecting can leave its
        connection in the client's pool rather than on the PubSub."""
        client = self.require(service)
        node_client: aioredis.Redis | None = None
        if isinstance(client, RedisCluster):
            node = random.choice(client.get_nodes())
            node_client = aioredis.Redis(host=node.host, port=int(node.port), **self._node_options)
        pubsub = client.pubsub() if node_client is None else node_client.pubsub()
        try:
            yield pubsub
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            if node_client is not None:
                with contextlib.suppress(*REDIS_ERRORS):
                    await node_client.aclose()

    async def info(self) -> dict[str, Any]:
        """INFO of the server, or of a cluster summed over its masters (memory, clients,
        hits, misses) with `cluster_masters` added."""
        client = self.require("monitoring")
        if not isinstance(client, RedisCluster):
            return dict(await client.info())
        replies = await client.info(target_nodes=RedisCluster.PRIMARIES)
        per_node = list(replies.values()) if _keyed_by_node(replies) else [replies]
        summed: dict[str, Any] = {"cluster_masters": len(per_node)}
        for name in ("used_memory", "connected_clients", "keyspace_hits", "keyspace_misses"):
            summed[name] = sum(int(node.get(name, 0)) for node in per_node)
        return summed

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "socket_connect_timeout": self.settings.redis_timeout_s,
            "socket_timeout": self.settings.redis_timeout_s,
            "health_check_interval": 30,
        }
        if self.settings.redis_ca_cert is not None and (self.url or "").startswith("rediss"):
            options["ssl_ca_certs"] = str(self.settings.redis_ca_cert)
        return options

    async def close(self) -> None:
        """Close the client if it is ours (a given client stays open and is kept for a
        later `open()`)."""
        if not self._owns_client:
            return
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def health(self) -> RedisHealth:
        if self.client is None:
            return RedisHealth(ok=False, latency_ms=None, detail="not configured")
        started = time.perf_counter()
        try:
            await self.client.ping()
        except REDIS_ERRORS as exc:
            self.failed(exc)
            return RedisHealth(ok=False, latency_ms=None, detail=_describe(exc))
        self.recovered()
        return RedisHealth(ok=True, latency_ms=(time.perf_counter() - started) * 1000, detail="ok")

    def require(self, service: str) -> RedisClient:
        """The client, for a service that cannot work without Redis (TransientError)."""
        if self.client is None:
            raise TransientError(f"{service}: needs Redis (set REDIS_URL)")
        return self.client

    def unavailable(self, exc: BaseException, service: str) -> TransientError:
        """Record a Redis failure of such a service; the error to raise."""
        self.failed(exc)
        return TransientError(f"{service} unavailable: Redis error ({type(exc).__name__})")

    def failed(self, exc: BaseException) -> None:
        """Record a Redis failure; warns once per outage."""
        self.failed_message(
            f"Redis unavailable ({_describe(exc)}): falling back to PostgreSQL "
            "and in-process state until it returns"
        )

    def failed_message(self, message: str) -> None:
        if self._degraded_since is None:
            self._degraded_since = time.monotonic()
            log.warning("%s", message)

    def recovered(self) -> None:
        if self._degraded_since is not None:
            self._degraded_since = None
            log.warning("Redis is reachable again")

    def _announce(self, message: str) -> None:
        if not self._announced:
            self._announced = True
            log.warning("%s", message)


def _keyed_by_node(replies: dict[str, Any]) -> bool:
    """Whether a cluster INFO reply is one dict per node (several masters answered)."""
    return bool(replies) and all(isinstance(v, dict) for v in replies.values())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
