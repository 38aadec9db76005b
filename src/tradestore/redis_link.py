"""The Redis connection, and the rule that Redis trouble never stops tradestore.

Services ask `link.client` for a client (None when Redis is not configured) and report
failures through `link.failed(exc)`: the first failure of an outage is logged once as a
warning, the next success logs the recovery. Nothing here ever raises for Redis trouble.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradestore.errors import TransientError
from tradestore.settings import Settings, mask_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedisHealth:
    ok: bool
    latency_ms: float | None
    detail: str


class RedisLink:
    def __init__(self, settings: Settings, client: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.url = settings.redis_connection_url()
        self._owns_client = client is None
        self.client: aioredis.Redis | None = client
        self._degraded_since: float | None = None
        self._announced = False

    @property
    def configured(self) -> bool:
        return self.client is not None

    @property
    def degraded(self) -> bool:
        return self.client is None or self._degraded_since is not None

    async def open(self) -> None:
        if self.client is None and self.url is not None:
            self.client = aioredis.Redis.from_url(self.url, **self._client_options())
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

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "socket_connect_timeout": self.settings.redis_timeout_s,
            "socket_timeout": self.settings.redis_timeout_s,
            "health_check_interval": 30,
        }
        if self.settings.redis_ca_cert is not None and (self.url or "").startswith("rediss://"):
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
        except (RedisError, OSError) as exc:
            self.failed(exc)
            return RedisHealth(ok=False, latency_ms=None, detail=_describe(exc))
        self.recovered()
        return RedisHealth(ok=True, latency_ms=(time.perf_counter() - started) * 1000, detail="ok")

    def require(self, service: str) -> aioredis.Redis:
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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
