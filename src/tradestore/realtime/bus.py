"""Notifications: relay committed outbox events to Redis, and consume them.

Relay: one batch at a time, under a transaction-scoped advisory lock (several relays may
run; they take turns). Each batch is the pending events in outbox id order, so the
stream is in id order within a batch; across batches an event whose transaction
committed late can follow events with higher ids (ids are taken at insert, not at
commit). A batch is XADDed to the stream (bounded with MAXLEN ~) and PUBLISHed for live
listeners by one script, then marked published in the same transaction that read it. A
relay that dies after XADD but before COMMIT leaves the events unpublished: the next
batch sends them again. Delivery is therefore at-least-once; every entry carries its
`outbox_id`, the consumers' de-duplication key. The relay wakes on the outbox's NOTIFY
and also polls, so nothing waits on a lost notification; while Redis is down, events
stay in the outbox and go out when it returns. The relay is supervised
(`tradestore.supervisor`): database or Redis failures, or a schema not migrated yet, are
retried with backoff and never end it. A Redis that lost its data (restarted without
persistence) is noticed by a marker key, and recently relayed events are relayed again
(see `_republish_if_redis_lost`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from redis.exceptions import ResponseError

from tradestore.db.database import Database
from tradestore.keys import Keys
from tradestore.realtime.events import NOTIFY_CHANNEL
from tradestore.redis_link import REDIS_ERRORS, RedisLink, end_if_cancelled
from tradestore.supervisor import NotReady, Supervised

log = logging.getLogger(__name__)

RELAY_BATCH_SIZE = 500  # events a relay round reads and sends at most
EVENT_FIELDS = ("outbox_id", "type", "aggregate_id", "payload", "created_at")
# KEYS[1] the stream; ARGV MAXLEN, k, k field names, then per event: channel, message,
# k values. One script: one round trip a batch, and (channels are not keys) it runs on
# the stream's node of a cluster, whose PUBLISH reaches every node.
RELAY_BATCH = """
local k = tonumber(ARGV[2])
local names = {}
for j = 1, k do names[j] = ARGV[2 + j] end
local i = 3 + k
while i <= #ARGV do
  local entry = {}
  for j = 1, k do
    entry[2 * j - 1] = names[j]
    entry[2 * j] = ARGV[i + 1 + j]
  end
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(entry))
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
  i = i + 2 + k
end
return 1
"""
RELAY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('tradestore.relay')) AS leader"
PENDING = """
SELECT id, event_type, aggregate_id, payload, created_at FROM event_outbox
 WHERE published_at IS NULL ORDER BY id LIMIT %s
"""
MARK_PUBLISHED = "UPDATE event_outbox SET published_at = now() WHERE id = ANY(%s)"
REPUBLISH_SINCE = (
    "UPDATE event_outbox SET published_at = NULL WHERE published_at >= %s RETURNING id"
)
OUTBOX_EXISTS = "SELECT to_regclass('event_outbox')"
SUBSCRIBE_POLL_S = 1.0
EPOCH_CLOCK_MARGIN_S = 5.0  # published_at is the database's clock, the marker time ours
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
        self,
        db: Database,
        link: RedisLink,
        keys: Keys,
        *,
        stream_maxlen: int = 100_000,
        republish_window_s: float = 600.0,
    ) -> None:
        self.db = db
        self.link = link
        self.keys = keys
        # one hash tag: in a cluster, the marker is lost with the stream's node, not apart
        self.stream = keys.tagged("events", "stream")
        self.stream_maxlen = stream_maxlen
        self.epoch_key = keys.tagged("events-epoch", "stream")
        self.republish_window_s = republish_window_s
        self.relay: Supervised | None = None
        self._epoch_seen_at: float | None = None
        self.trimmed = 0  # pending entries found trimmed from the stream (acknowledged)

    def channel(self, event_type: str) -> str:
        return self.keys.key("events-live", event_type)

    # --- relay ------------------------------------------------------------------------------
    async def publish_pending(self, batch: int = RELAY_BATCH_SIZE) -> int:
        """Relay one batch; returns how many events went out (0: none, not our turn, or
        Redis unavailable: the events stay pending and go out later)."""
        try:
            return await self._publish_batch(batch)
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            return 0

    async def _publish_batch(self, batch: int) -> int:
        """One batch under the relay lock; Redis errors propagate (nothing is marked).
        Pipelined: BEGIN goes with the lock, the marking with the COMMIT."""
        client = self.link.client
        if client is None:
            return 0
        async with self.db.transaction(pipeline=True) as conn:
            cur = await conn.execute(RELAY_LOCK)
            leader = await cur.fetchone()
            if not (leader and leader["leader"]):
                return 0
            await self._republish_if_redis_lost(conn, client)
            cur = await conn.execute(PENDING, (batch,))
            rows = await cur.fetchall()
            if not rows:
                return 0
            events = [
                Event(r["id"], r["event_type"], r["aggregate_id"], r["payload"], r["created_at"])
                for r in rows
            ]
            await client.eval(RELAY_BATCH, 1, self.stream, *self._batch_args(events))
            self.link.recovered()
            await conn.execute(MARK_PUBLISHED, ([e.outbox_id for e in events],))
        return len(events)

    def _batch_args(self, events: list[Event]) -> list[str | int]:
        """RELAY_BATCH's ARGV: MAXLEN, the field names, then each event's channel,
        message and field values."""
        args: list[str | int] = [self.stream_maxlen, len(EVENT_FIELDS), *EVENT_FIELDS]
        for event in events:
            fields = event.fields()
            args += [self.channel(event.type), json.dumps(fields)]
            args += [fields[name] for name in EVENT_FIELDS]
        return args

    async def _republish_if_redis_lost(self, conn: Any, client: Any) -> None:
        """A Redis that restarted without persistence lost the stream, and with it the
        events relayed shortly before that no consumer had read yet. A marker key tells:
        when it is gone, events published since the marker was last seen (or within
        `republish_window_s` when this process never saw it) are marked pending again.
        Consumers de-duplicate by `outbox_id`."""
        fresh = await client.set(self.epoch_key, "1", nx=True)
        now = time.time()
        if fresh:
            since = (
                self._epoch_seen_at - EPOCH_CLOCK_MARGIN_S
                if self._epoch_seen_at is not None
                else now - self.republish_window_s
            )
            cur = await conn.execute(REPUBLISH_SINCE, (datetime.fromtimestamp(since, UTC),))
            if again := len(await cur.fetchall()):
                log.warning(
                    "Redis lost the event stream (restarted?): relaying %d recent event(s) again",
                    again,
                )
        self._epoch_seen_at = now

    async def run_relay(self, conninfo: str | None = None, *, poll_s: float = 1.0) -> None:
        """Relay until cancelled (supervised: errors are retried with backoff)."""
        self.start_relay(conninfo, poll_s=poll_s)
        assert self.relay is not None
        await self.relay.run_until_cancelled()

    def start_relay(self, conninfo: str | None = None, *, poll_s: float = 1.0) -> None:
        """Start the supervised relay: on every outbox NOTIFY, and every poll_s regardless."""
        if self.relay is not None and self.relay.running:
            return

        async def body() -> None:
            await self._relay_loop(conninfo, poll_s)

        self.relay = Supervised("event relay", body, logger=log)
        self.relay.start()

    async def _relay_loop(self, conninfo: str | None, poll_s: float) -> None:
        supervisor = self.relay
        assert supervisor is not None
        if await self.db.query_value(OUTBOX_EXISTS) is None:
            raise NotReady("event_outbox does not exist yet (run `tradestore db migrate`)")
        listener = await _listen(conninfo) if conninfo else None
        try:
            while not supervisor.stopping:
                # Until a batch finds nothing: an event committed while a batch was out
                # goes in the next at once, not after its notification's round trip.
                while not supervisor.stopping and await self._publish_batch(RELAY_BATCH_SIZE):
                    pass
                supervisor.healthy()
                await _wait(listener, poll_s)
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            raise
        finally:
            if listener is not None:
                await listener.close()

    async def stop_relay(self, timeout_s: float = 1.0) -> None:
        """Stop the relay wherever it is, within timeout_s (a batch it was sending is
        sent again later); never raises."""
        if self.relay is not None:
            await self.relay.stop(timeout_s)

    async def backlog(self) -> dict[str, Any]:
        """Events committed but not yet relayed, and the age of the oldest."""
        row = await self.db.query_one(BACKLOG)
        assert row is not None
        return {
            "pending": int(row["pending"]),
            "oldest": row["oldest"],
            "relay_running": self.relay is not None and self.relay.running,
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
        types, events already yielded (by `outbox_id`) and pending entries trimmed from the
        stream are acknowledged and skipped (`trimmed` counts the last). Redis outages pause
        the iteration; when Redis comes back without the group (restarted), the group is
        made again from the stream's beginning, so nothing relayed meanwhile is missed."""
        await self._ensure_group(group, start)
        cursor = "0"  # this consumer's pending entries first, then ">" for new ones
        seen = _RecentIds()
        while True:
            try:
                replies = await self._client().xreadgroup(
                    group,
                    consumer,
                    {self.stream: cursor},
                    count=100,
                    block=block_ms if cursor == ">" else None,
                )
            except REDIS_ERRORS as exc:
                end_if_cancelled()
                self.link.failed(exc)
                await asyncio.sleep(1.0)
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._ensure_group(group, "0")
                continue
            end_if_cancelled()
            self.link.recovered()
            entries = replies[0][1] if replies else []
            if cursor != ">" and not entries:
                cursor = ">"
                continue
            for stream_id, fields in entries:
                if cursor != ">":
                    cursor = _text(stream_id)
                event = self._entry_event(_text(stream_id), fields)
                if event is None or event.outbox_id in seen or (types and event.type not in types):
                    await self._xack(group, stream_id)
                    continue
                seen.add(event.outbox_id)
                yield event

    def _entry_event(self, stream_id: str, fields: dict[Any, Any] | None) -> Event | None:
        if not fields:  # a pending entry whose message MAXLEN trimmed away
            self.trimmed += 1
            return None
        return Event.from_fields(stream_id, fields)

    async def ack(self, group: str, event: Event) -> bool:
        """Acknowledge an event; False when Redis could not be told (it is down): the
        event stays pending and comes again, which consumers de-duplicate by outbox_id."""
        return event.stream_id is None or await self._xack(group, event.stream_id)

    async def _xack(self, group: str, stream_id: Any) -> bool:
        try:
            await self._client().xack(self.stream, group, stream_id)
        except REDIS_ERRORS as exc:
            self.link.failed(exc)
            return False
        return True

    async def replay(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        types: set[str] | None = None,
        page: int = 500,
    ) -> AsyncIterator[Event]:
        """Every event still in the stream relayed in [since, until), oldest first."""
        cursor = f"{int(since.timestamp() * 1000)}-0"
        upper = "+" if until is None else f"({int(until.timestamp() * 1000)}-0"
        while True:
            entries = await self._client().xrange(self.stream, min=cursor, max=upper, count=page)
            for stream_id, fields in entries:
                event = Event.from_fields(_text(stream_id), fields)
                if not types or event.type in types:
                    yield event
            if len(entries) < page:
                return
            cursor = "(" + _text(entries[-1][0])

    async def subscribe(self, types: set[str] | None = None) -> AsyncIterator[Event]:
        """Live events as they are relayed (pub/sub: nothing is kept for absent listeners).
        Polls with a timeout (an idle channel is not an error, with any redis-py) and
        subscribes again after a Redis outage."""
        while True:
            try:
                async with self.link.pubsub("events") as pubsub:
                    if types:
                        await pubsub.subscribe(*[self.channel(t) for t in types])
                    else:
                        await pubsub.psubscribe(self.keys.key("events-live") + ":*")
                    self.link.recovered()
                    while True:
                        message = await pubsub.get_message(timeout=SUBSCRIBE_POLL_S)
                        end_if_cancelled()
                        if message is not None and message.get("type") in ("message", "pmessage"):
                            yield Event.from_fields(None, json.loads(message["data"]))
            except REDIS_ERRORS as exc:
                end_if_cancelled()
                self.link.failed(exc)
                await asyncio.sleep(1.0)

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


class _RecentIds:
    """The last `size` outbox ids a consumer yielded, for de-duplication."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._size = size

    def __contains__(self, outbox_id: object) -> bool:
        return outbox_id in self._ids

    def add(self, outbox_id: int) -> None:
        self._ids[outbox_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
