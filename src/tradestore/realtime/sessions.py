"""User sessions in Redis. The token is 256 random bits handed to the caller once; Redis
keeps only its SHA-256, so a Redis dump cannot be replayed as sessions. An expired or
revoked token is simply not found. Sessions need Redis: without it, calls raise
TransientError (nothing here is a PostgreSQL record).

A session and its user's index are two keys that a Redis Cluster may keep on two nodes,
so they are written in an order that is safe if the second write never happens: the index
is extended before the session is written, and a session is deleted before its index
entry. The index may name a session that is gone (listing skips it); a live session is
never missing from it, so `revoke_all` reaches every one."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradestore.errors import TransientError, ValidationError
from tradestore.keys import Keys
from tradestore.redis_link import REDIS_ERRORS, RedisLink

DEFAULT_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Session:
    id: str  # the token's hash: safe to show and log
    user_id: str
    data: dict[str, Any]
    created_at: datetime
    last_seen_at: datetime
    ttl_s: int


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, link: RedisLink, keys: Keys) -> None:
        self.link = link
        self.keys = keys

    async def create(
        self, user_id: str, data: dict[str, Any] | None = None, *, ttl_s: int = DEFAULT_TTL_S
    ) -> tuple[str, Session]:
        """A new session; returns (token, session). The token is not stored anywhere."""
        if not user_id or len(user_id) > 100:
            raise ValidationError("user_id: 1 to 100 characters", field="user_id", value=user_id)
        if data is not None and not isinstance(data, dict):
            raise ValidationError("data must be a JSON object", field="data", value=data)
        if ttl_s < 1:
            raise ValidationError("ttl_s must be at least 1", field="ttl_s", value=ttl_s)
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        session = Session(token_hash(token), user_id, data or {}, now, now, ttl_s)
        try:
            await self._index(session, xx=False)
            await self._client().set(self._key(session.id), _encode(session), ex=ttl_s)
        except REDIS_ERRORS as exc:
            raise self._down(exc) from exc
        return token, session

    async def get(self, token: str) -> Session | None:
        return await self._get_by_id(token_hash(token))

    async def touch(self, token: str) -> Session | None:
        """Mark the session used now and restart its TTL (sliding expiry)."""
        session = await self.get(token)
        if session is None:
            return None
        now = datetime.now(UTC)
        renewed = Session(
            session.id, session.user_id, session.data, session.created_at, now, session.ttl_s
        )
        try:
            await self._index(renewed, xx=True)
            kept = await self._client().set(
                self._key(session.id), _encode(renewed), ex=session.ttl_s, xx=True
            )
        except REDIS_ERRORS as exc:
            raise self._down(exc) from exc
        return renewed if kept else None

    async def revoke(self, token: str) -> bool:
        session = await self.get(token)
        if session is None:
            return False
        await self._delete([session.id], session.user_id)
        return True

    async def revoke_all(self, user_id: str) -> int:
        ids = [s.id for s in await self.of_user(user_id)]
        if ids:
            await self._delete(ids, user_id)
        return len(ids)

    async def of_user(self, user_id: str) -> list[Session]:
        """The user's live sessions, newest activity first."""
        client = self._client()
        try:
            now = datetime.now(UTC).timestamp()
            await client.zremrangebyscore(self._user_key(user_id), "-inf", now)
            ids = [i.decode() for i in await client.zrange(self._user_key(user_id), 0, -1)]
        except REDIS_ERRORS as exc:
            raise self._down(exc) from exc
        sessions = [s for s in [await self._get_by_id(i) for i in ids] if s is not None]
        return sorted(sessions, key=lambda s: s.last_seen_at, reverse=True)

    async def _get_by_id(self, session_id: str) -> Session | None:
        try:
            raw = await self._client().get(self._key(session_id))
        except REDIS_ERRORS as exc:
            raise self._down(exc) from exc
        return None if raw is None else _decode(session_id, raw)

    async def _index(self, session: Session, *, xx: bool) -> None:
        """Enter (or, with xx, only extend) the session in its user's index, which lives
        as long as the user's longest session."""
        key = self._user_key(session.user_id)
        expires = session.last_seen_at.timestamp() + session.ttl_s
        async with self._client().pipeline(transaction=False) as pipe:  # one key: one node
            pipe.zadd(key, {session.id: expires}, xx=xx)
            pipe.expire(key, session.ttl_s, gt=True)
            pipe.expire(key, session.ttl_s, nx=True)
            await pipe.execute()

    async def _delete(self, ids: list[str], user_id: str) -> None:
        client = self._client()
        try:
            for session_id in ids:  # one key each: sessions may be on several nodes
                await client.delete(self._key(session_id))
            await client.zrem(self._user_key(user_id), *ids)
        except REDIS_ERRORS as exc:
            raise self._down(exc) from exc

    def _client(self) -> Any:
        return self.link.require("sessions")

    def _down(self, exc: BaseException) -> TransientError:
        return self.link.unavailable(exc, "sessions")

    def _key(self, session_id: str) -> str:
        return self.keys.key("session", session_id)

    def _user_key(self, user_id: str) -> str:
        return self.keys.key("user-sessions", user_id)


def _encode(session: Session) -> str:
    return json.dumps(
        {
            "user_id": session.user_id,
            "data": session.data,
            "created_at": session.created_at.isoformat(),
            "last_seen_at": session.last_seen_at.isoformat(),
            "ttl_s": session.ttl_s,
        }
    )


def _decode(session_id: str, raw: bytes) -> Session:
    body = json.loads(raw)
    return Session(
        session_id,
        body["user_id"],
        body["data"],
        datetime.fromisoformat(body["created_at"]),
        datetime.fromisoformat(body["last_seen_at"]),
        int(body["ttl_s"]),
    )
