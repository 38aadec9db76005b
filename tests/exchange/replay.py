"""A local stand-in for the dYdX v4 indexer's candles endpoint (no network in tests):
the recorded response shape, newest-first pages bounded by fromISO (inclusive), toISO
(exclusive) and limit, the indexer's error bodies, RateLimit-* headers, and faults to
inject one request at a time."""

from __future__ import annotations

import asyncio
import bisect
import json
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from aiohttp import web

RESOLUTION_SECONDS = {"1MIN": 60, "5MINS": 300, "15MINS": 900, "1HOUR": 3600, "1DAY": 86400}


def recorded_candles(
    ticker: str, start: datetime, n: int, *, resolution: str = "1MIN", empty_at: int | None = None
) -> list[dict[str, Any]]:
    """n candles in the indexer's shape, oldest first; `empty_at` is a no-trade candle."""
    step = timedelta(seconds=RESOLUTION_SECONDS[resolution])
    out, price = [], Decimal("89934")
    for i in range(n):
        move = Decimal((i * 7919) % 200 - 100) / 10
        open_, close = price, price + move
        if i == empty_at:
            open_ = close = price
        high = max(open_, close) + Decimal("12.5")
        low = min(open_, close) - Decimal("8.25")
        base = Decimal("0") if i == empty_at else Decimal(1 + (i * 31) % 50) / 10000 * 3
        out.append(
            {
                "startedAt": (start + i * step).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "ticker": ticker,
                "resolution": resolution,
                "low": str(low if i != empty_at else close),
                "high": str(high if i != empty_at else close),
                "open": str(open_),
                "close": str(close),
                "baseTokenVolume": str(base),
                "usdVolume": str((base * (open_ + close) / 2).quantize(Decimal("0.0001"))),
                "trades": 0 if i == empty_at else 1 + i % 90,
                "startingOpenInterest": "381.7348",
                "orderbookMidPriceOpen": str(open_),
                "orderbookMidPriceClose": str(close),
            }
        )
        price = close
    return out


class Server(Protocol):
    """A replay server: its aiohttp app, and the base URL it is served at."""

    url: str

    def app(self) -> web.Application: ...


S = TypeVar("S", bound=Server)


@dataclass
class Indexer:
    candles: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    faults: deque[str] = field(default_factory=deque)  # "429", "500", "truncated", "overlap"
    requests: int = 0
    url: str = ""
    limit_per_s: float | None = None  # the server's own limit: more gets a 429
    rejected: int = 0  # 429s sent for going over limit_per_s
    _recent: deque[float] = field(default_factory=deque)
    _index: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, candles: list[dict[str, Any]]) -> None:
        key = (candles[0]["ticker"], candles[0]["resolution"])
        merged = {c["startedAt"]: c for c in self.candles.get(key, []) + candles}
        self.candles[key] = [merged[k] for k in sorted(merged)]
        self._index.pop(key, None)

    def _times(self, ticker: str, resolution: str) -> list[str]:
        key = (ticker, resolution)
        if key not in self._index:
            self._index[key] = [c["startedAt"] for c in self.candles[key]]
        return self._index[key]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        headers = {"RateLimit-Limit": "100", "RateLimit-Remaining": "99", "RateLimit-Reset": "0"}
        if self._over_limit():
            self.rejected += 1
            body = {"errors": [{"msg": "Too many requests"}]}
            return web.json_response(body, status=429, headers={**headers, "Retry-After": "100"})
        fault = self.faults.popleft() if self.faults else None
        if fault == "429":
            body = {"errors": [{"msg": "Too many requests"}]}
            return web.json_response(body, status=429, headers={**headers, "Retry-After": "50"})
        if fault == "500":
            return web.json_response({"error": "Internal Server Error"}, status=500)
        ticker = request.match_info["ticker"]
        resolution = request.query.get("resolution", "")
        if resolution not in RESOLUTION_SECONDS:
            return _bad("resolution", resolution, "resolution must be a valid Candle Resolution")
        if (ticker, resolution) not in self.candles:
            return _bad("ticker", ticker, "ticker must be a valid ticker (BTC-USD, etc)")
        start, end = request.query["fromISO"], request.query["toISO"]
        limit = int(request.query.get("limit", "1000"))
        series = self.candles[(ticker, resolution)]
        times = self._times(ticker, resolution)
        first, stop = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
        page = series[max(first, stop - limit) : stop][::-1]
        if fault == "overlap":  # one candle past toISO, as a page overlapping the previous
            page = series[stop : stop + 1] + page
        text = json.dumps({"candles": page})
        if fault == "truncated":
            text = text[: len(text) // 2]
        return web.Response(text=text, content_type="application/json", headers=headers)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "rejected": self.rejected})

    async def set_limit(self, request: web.Request) -> web.Response:
        self.limit_per_s = float(request.query["per_s"])
        return web.json_response({"limit_per_s": self.limit_per_s})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v4/candles/perpetualMarkets/{ticker}", self.handle)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/limit", self.set_limit)
        return app

    def _over_limit(self) -> bool:
        """Over limit_per_s in the last second (a sliding window, with 10% slack)."""
        if self.limit_per_s is None:
            return False
        now = time.monotonic()
        while self._recent and self._recent[0] < now - 1.0:
            self._recent.popleft()
        self._recent.append(now)
        return len(self._recent) > self.limit_per_s * 1.1 + 1


def _bad(param: str, value: str, msg: str) -> web.Response:
    errors = [{"value": value, "msg": msg, "param": param, "location": "query"}]
    return web.json_response({"errors": errors}, status=400)


@contextmanager
def running_apart(server: Server) -> Iterator[str]:
    """Serve from a process of its own (a benchmark's client then has the
    interpreter to itself, as against a real exchange); its base URL. `/stats` tells
    requests and 429s sent, `POST /limit?per_s=N` sets its own limit."""
    context = multiprocessing.get_context("fork")
    ports: Any = context.Queue()
    process = context.Process(target=_serve_apart, args=(server, ports), daemon=True)
    process.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=30)}"
    finally:
        process.terminate()
        process.join(10)


def _serve_apart(server: Server, ports: Any) -> None:
    async def serve() -> None:
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(serve())


@contextmanager
def running(server: S) -> Iterator[S]:
    """Serve on a free local port from a thread with its own event loop (so a
    CLI subprocess, or code already inside an event loop, reaches it); server.url is
    its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(server.app(), access_log=None)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.url = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the replay server did not start")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def stored_as(candle: dict[str, Any]) -> tuple[Any, ...]:
    """What tradestore must store of an indexer candle (exact)."""
    volume = Decimal(candle["baseTokenVolume"])
    vwap = (
        (Decimal(candle["usdVolume"]) / volume).quantize(Decimal("0.00000001")) if volume else None
    )
    return (
        datetime.fromisoformat(candle["startedAt"].replace("Z", "+00:00")).astimezone(UTC),
        Decimal(candle["open"]),
        Decimal(candle["high"]),
        Decimal(candle["low"]),
        Decimal(candle["close"]),
        volume,
        candle["trades"],
        vwap,
    )


def this_minute(*, room_s: float) -> datetime:
    """The start of the current minute, after waiting for the next one when fewer than
    room_s seconds are left of it: a test that treats this minute's candle as the open
    one must not see the minute close while it runs."""
    now = datetime.now(UTC)
    if now.second + now.microsecond / 1e6 > 60 - room_s:
        time.sleep(60 - now.second - now.microsecond / 1e6 + 0.05)
        now = datetime.now(UTC)
    return now.replace(second=0, microsecond=0)
