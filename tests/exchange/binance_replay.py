"""A local stand-in for Binance's public REST API, as far as CCXT's `load_markets` and
`fetch_ohlcv` reach it: `exchangeInfo` (spot, and empty USD-M/COIN-M lists) and
`/api/v3/klines` (startTime inclusive, endTime, limit at most 1000, oldest first), with
Binance's own error bodies and faults to inject one request at a time. CCXT reaches it
through TRADESTORE_CCXT_URLS, which moves every Binance API URL to this origin."""

from __future__ import annotations

import bisect
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}
MAX_LIMIT = 1000


def recorded_klines(start: datetime, n: int, *, interval: str = "1m") -> list[list[Any]]:
    """n klines in Binance's shape, oldest first; every 100th has no trades."""
    step = INTERVAL_MS[interval]
    first = int(start.timestamp() * 1000)
    out, price = [], Decimal("43210.12")
    for i in range(n):
        open_ = price
        close = price + Decimal((i * 7919) % 300 - 150) / 100
        high = max(open_, close) + Decimal("3.57")
        low = min(open_, close) - Decimal("2.01")
        volume = Decimal(0) if i % 100 == 99 else Decimal(1 + (i * 31) % 70) / 1000
        t = first + i * step
        out.append(
            [
                t,
                f"{open_:.8f}",
                f"{high:.8f}",
                f"{low:.8f}",
                f"{close:.8f}",
                f"{volume:.8f}",
                t + step - 1,
                f"{volume * close:.8f}",
                0 if volume == 0 else 1 + i % 40,
                "0.00000000",
                "0.00000000",
                "0",
            ]
        )
        price = close
    return out


@dataclass
class Binance:
    klines: dict[tuple[str, str], list[list[Any]]] = field(default_factory=dict)
    faults: deque[str] = field(default_factory=deque)  # "429", "500", "truncated", "overlap"
    kline_requests: int = 0
    unknown_paths: list[str] = field(default_factory=list)
    url: str = ""

    def add(self, symbol: str, interval: str, rows: list[list[Any]]) -> None:
        merged = {row[0]: row for row in self.klines.get((symbol, interval), []) + rows}
        self.klines[(symbol, interval)] = [merged[t] for t in sorted(merged)]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self.spot_info)
        app.router.add_get("/fapi/v1/exchangeInfo", self.no_markets)
        app.router.add_get("/dapi/v1/exchangeInfo", self.no_markets)
        app.router.add_get("/api/v3/klines", self.handle_klines)
        app.router.add_route("*", "/{tail:.*}", self.unknown)
        return app

    async def spot_info(self, request: web.Request) -> web.Response:
        symbols = sorted({symbol for symbol, _ in self.klines} | {"BTCUSDT"})
        return web.json_response(
            {"timezone": "UTC", "serverTime": 0, "symbols": [_spot(s) for s in symbols]}
        )

    async def no_markets(self, request: web.Request) -> web.Response:
        return web.json_response({"timezone": "UTC", "serverTime": 0, "symbols": []})

    async def unknown(self, request: web.Request) -> web.Response:
        self.unknown_paths.append(request.path)
        return web.json_response({"code": -1000, "msg": "not served here"}, status=404)

    async def handle_klines(self, request: web.Request) -> web.Response:
        self.kline_requests += 1
        fault = self.faults.popleft() if self.faults else None
        if fault == "429":
            body = {"code": -1003, "msg": "Too many requests; current limit is 6000."}
            return web.json_response(body, status=429, headers={"Retry-After": "0"})
        if fault == "500":
            return web.Response(status=500, text="Internal Server Error")
        symbol, interval = request.query.get("symbol", ""), request.query.get("interval", "")
        if interval not in INTERVAL_MS:
            return web.json_response({"code": -1120, "msg": "Invalid interval."}, status=400)
        if (symbol, interval) not in self.klines:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        rows = self.klines[(symbol, interval)]
        times = [row[0] for row in rows]
        limit = min(int(request.query.get("limit", "500")), MAX_LIMIT)
        first = bisect.bisect_left(times, int(request.query.get("startTime", "0")))
        end = request.query.get("endTime")
        stop = bisect.bisect_right(times, int(end)) if end else len(rows)
        page = rows[first : min(stop, first + limit)]
        if fault == "overlap":  # one kline before startTime, as a page overlapping the last
            page = rows[max(first - 1, 0) : first] + page
        text = json.dumps(page)
        if fault == "truncated":
            text = text[: len(text) // 2]
        return web.Response(text=text, content_type="application/json")


def _spot(symbol: str) -> dict[str, Any]:
    base, quote = symbol[:-4], symbol[-4:]
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1e6",
                "tickSize": "0.01",
            },
            {"filterType": "LOT_SIZE", "minQty": "1e-5", "maxQty": "9000", "stepSize": "1e-5"},
        ],
    }


def stored_as(row: list[Any]) -> tuple[Any, ...]:
    """What tradestore must store of a kline (exact; CCXT's OHLCV has no trades or vwap)."""
    return (
        datetime.fromtimestamp(row[0] / 1000, UTC),
        *(Decimal(value) for value in row[1:6]),
        None,
        None,
    )
