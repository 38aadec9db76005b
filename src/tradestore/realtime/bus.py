"""Notifications: relay committed outbox events to Redis, and consume them.

Relay: one batch at a time, under a transaction-scoped advisory lock (several relays
may run; they take turns, so the stream keeps outbox order). A batch is XADDed to the
stream (bounded with MAXLEN ~) and PUBLISHed for live listeners, then marked published
in the same transaction that read it. A relay that dies after XADD but before COMMIT
leaves the events unpublished: the next batch sends them again. Delivery is therefore
at-least-once; every entry carries its `outbox_id`, the consumers' de-duplication key.
The relay wakes on the outbox's NOTIFY and also polls, so nothing waits on a lost
notification; while Redis is down, events stay in the outbox and go out when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from redis.exceptions import RedisError, ResponseError

from tradestore.db.database import Database
from tradestore.keys import Keys
from tradestore.realtime.events import NOTIFY_CHANNEL
from tradestore.redis_link import RedisLink

log = logging.getLogger(__name__)

RELAY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('tradestore.relay')) AS leader"
PENDING = """
SELECT id, event_type, aggregate_id, payload, created_at FROM event_outbox
 WHERE published_at IS NULL ORDER BY id LIMIT %s
"""
MARK_PUBLISHED = "UPDATE event_outbox SET published_at = now() WHERE id = ANY(%s)"
BACKLOG = """
SELECT count(*) AS pending, min(created_at) AS oldest FROM event_outbox
 WHERE published_at IS NULL
"""


@dataclass(frozen=True)
class Event:
    outbox_id: int
    type: str
    aggregate_id: str | None
    payload: dict[str, Any]
    created_at: datetime
    stream_id: str | None = None

    def fields(self) -> dict[str, str]:
        return {
            "outbox_id": str(self.outbox_id),
            "type": self.type,
            "aggregate_id": self.aggregate_id or "",
            "payload": json.dumps(self.payload),
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_fields(cls, stream_id: str | None, fields: dict[Any, Any]) -> Event:
        text = {_text(k): _text(v) for k, v in fields.items()}
        return cls(
            int(text["outbox_id"]),
            text["type"],
            text["aggregate_id"] or None,
            json.loads(text["payload"]),
            datetime.fromisoformat(text["created_at"]),
            stream_id,
        )


class EventBus:
    def __init__(
        self, db: Database, link: RedisLink, keys: Keys, *, stream_maxlen: int = 100_000
    ) -> None:
        self.db = db
        self.link = link
        self.keys = keys
        self.stream = keys.key("events")
        self.stream_maxlen = stream_maxlen
        self._relay: asyncio.Task[None] | None = None
        self._stopping = False

    def channel(self, event_type: str) -> str:
        return self.keys.key("events-live", event_type)

    # --- relay ------------------------------------------------------------------------------
    async def publish_pending(self, batch: int = 500) -> int:
        """Relay one batch; returns how many events went out (0: none, or not our turn)."""
        client = self.link.client
        if client is None:
            return 0
        async with self.db.transaction() as conn:
            cur = await conn.execute(RELAY_LOCK)
            leader = await cur.fetchone()
            if not (leader and leader["leader"]):
                return 0
            cur = await conn.execute(PENDING, (batch,))
            rows = await cur.fetchall()
            if not rows:
                return 0
            events = [
                Event(r["id"], r["event_type"], r["aggregate_id"], r["payload"], r["created_at"])
                for r in rows
            ]
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for event in events:
                        pipe.xadd(
                            self.stream,
                            event.fields(),  # type: ignore[arg-type]
                            maxlen=self.stream_maxlen,
                            approximate=True,
                        )
                        pipe.publish(self.channel(event.type), json.dumps(event.fields()))
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                self.link.failed(exc)
                return 0  # rolled back: the events stay pending
            self.link.recovered()
            await conn.execute(MARK_PUBLISHED, ([e.outbox_id for e in events],))
        return len(events)

    async def run_relay(self, conninfo: str | None = None, *, poll_s: float = 1.0) -> None:
        """Relay until cancelled: on every outbox NOTIFY, and every poll_s regardless."""
        listener = await _listen(conninfo) if conninfo else None
        try:
            while not self._stopping:
                while not self._stopping and await self.publish_pending() > 0:
                    pass
                await _wait(listener, poll_s)
        finally:
            if listener is not None:
                await listener.close()

    def start_relay(self, conninfo: str | None = None, *, poll_s: float = 1.0) -> None:
        if self._relay is None or self._relay.done():
            self._stopping = False
            self._relay = asyncio.create_task(
                self.run_relay(conninfo, poll_s=poll_s), name="event-relay"
            )

    async def stop_relay(self) -> None:
        """Stop the relay wherever it is (a batch it was sending is sent again later).

        Cancellation alone is not enough: a wait inside psycopg's notifies() may end quietly
        when cancelled, so the loop also checks a flag."""
        if self._relay is None:
            return
        self._stopping = True
        self._relay.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._relay), timeout=5)
        self._relay = None

    async def backlog(self) -> dict[str, Any]:
        """Events committed but not yet relayed, and the age of the oldest."""
        row = await self.db.query_one(BACKLOG)
        assert row is not None
        return {
            "pending": int(row["pending"]),
            "oldest": row["oldest"],
            "relay_running": self._relay is not None and not self._relay.done(),
        }

    # --- consuming ----------------------------------------------------------------------------
    async def consume(
        self,
        group: str,
        consumer: str,
        *,
        types: set[str] | None = None,
        start: str = "$",
        block_ms: int = 1000,
    ) -> AsyncIterator[Event]:
        """Events for a consumer group, at least once: first this consumer's unacknowledged
        ones (after a restart), then new ones. Acknowledge each with `ack`. Events of other
        types are acknowledged and skipped. Redis outages pause the iteration."""
        await self._ensure_group(group, start)
        pending_first = True
        while True:
            try:
                replies = await self._client().xreadgroup(
                    group,
                    consumer,
                    {self.stream: "0" if pending_first else ">"},
                    count=100,
                    block=None if pending_first else block_ms,
                )
            except (RedisError, OSError) as exc:
                self.link.failed(exc)
                await asyncio.sleep(1.0)
                with contextlib.suppress(RedisError, OSError):
                    await self._ensure_group(group, start)
                continue
            entries = replies[0][1] if replies else []
            if pending_first and not entries:
                pending_first = False
                continue
            for stream_id, fields in entries:
                event = Event.from_fields(_text(stream_id), fields)
                if types and event.type not in types:
                    await self.ack(group, event)
                    continue
                yield event

    async def ack(self, group: str, event: Event) -> None:
        if event.stream_id is not None:
            await self._client().xack(self.stream, group, event.stream_id)

    async def replay(
        self, since: datetime, *, types: set[str] | None = None, page: int = 500
    ) -> AsyncIterator[Event]:
        """Every event still in the stream since a time, oldest first."""
        cursor = f"{int(since.timestamp() * 1000)}-0"
        while True:
            entries = await self._client().xrange(self.stream, min=cursor, count=page)
            for stream_id, fields in entries:
                event = Event.from_fields(_text(stream_id), fields)
                if not types or event.type in types:
                    yield event
            if len(entries) < page:
                return
            cursor = "(" + _text(entries[-1][0])

    async def subscribe(self, types: set[str] | None = None) -> AsyncIterator[Event]:
        """Live events as they are relayed (pub/sub: nothing is kept for absent listeners)."""
        pubsub = self._client().pubsub()
        try:
            if types:
                await pubsub.subscribe(*[self.channel(t) for t in types])
            else:
                await pubsub.psubscribe(self.keys.key("events-live") + ":*")
            async for message in pubsub.listen():
                if message.get("type") in ("message", "pmessage"):
                    yield Event.from_fields(None, json.loads(message["data"]))
        finally:
            await pubsub.aclose()

    async def _ensure_group(self, group: str, start: str) -> None:
        try:
            await self._client().xgroup_create(self.stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _client(self) -> Any:
        return self.link.require("events")


async def _listen(conninfo: str) -> psycopg.AsyncConnection[Any] | None:
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        log.warning("event relay cannot LISTEN (%s); polling only", exc)
        return None
    try:
        await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
    except BaseException:  # cancelled or failed while setting up: do not leak it
        await conn.close()
        raise
    return conn


async def _wait(listener: psycopg.AsyncConnection[Any] | None, poll_s: float) -> None:
    if listener is None:
        await asyncio.sleep(poll_s)
        return
    # The generator holds the connection's lock while it waits: close it explicitly (also
    # when cancelled), or closing the connection afterwards would wait on that lock forever.
    notifies = listener.notifies(timeout=poll_s, stop_after=1)
    try:
        async for _ in notifies:
            pass
    except TimeoutError:
        pass
    finally:
        await notifies.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
