"""The HTML report as a user opens it: dated charts with a benchmark, drawdown, rolling
Sharpe and distribution, a monthly heat map, the trade table with durations like `1d 5h`,
the definitions; one self-contained file. Opened in a real headless Chromium at a
phone's width, every chart must draw something and nothing may overflow the page."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.marketdata.helpers import new_symbol
from tests.trading.helpers import new_strategy
from tradestore import TradeStore
from tradestore.analytics.report import build_report, duration_text
from tradestore.analytics.report_html import render_html

D0 = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 75
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def _history(store: TradeStore) -> object:
    symbol = new_symbol()
    strategy = await new_strategy(store, symbols=[symbol])
    rng = np.random.default_rng(7)
    equity = 10_000 * np.cumprod(1 + rng.normal(0.001, 0.02, DAYS))
    closes = 40_000 * np.cumprod(1 + rng.normal(0.0005, 0.03, DAYS))
    for day in range(DAYS):
        await store.portfolio.record(
            {
                "strategy_id": strategy.id,
                "total_value": f"{equity[day]:.2f}",
                "cash_balance": "1000",
                "snapshot_time": D0 + timedelta(days=day, hours=23),
            }
        )
    candles = [
        {
            "timestamp": D0 + timedelta(days=day),
            "open": f"{closes[day]:.2f}",
            "high": f"{closes[day] * 1.01:.2f}",
            "low": f"{closes[day] * 0.99:.2f}",
            "close": f"{closes[day]:.2f}",
            "volume": "12",
        }
        for day in range(DAYS)
    ]
    await store.market_data.store_candles(symbol, "1d", candles)
    for i in range(3):
        trade = await store.trades.open(
            {
                "strategy_id": strategy.id,
                "symbol": symbol,
                "side": "BUY",
                "entry_price": "100",
                "quantity": "1",
                "entry_time": D0 + timedelta(days=10 * i),
            }
        )
        await store.trades.close(
            trade.id,
            exit_price=str(95 + 5 * i),
            exit_reason="SIGNAL",
            exit_time=D0 + timedelta(days=10 * i + 1, hours=5),
        )
    return strategy


def test_durations_read_as_people_say_them() -> None:
    assert [duration_text(m) for m in (None, 45, 200, 29 * 60, 24 * 60 + 5 * 60 + 59)] == [
        "-",
        "45m",
        "3h 20m",
        "1d 5h",
        "1d 5h",
    ]


async def test_the_report_holds_every_part(store: TradeStore) -> None:
    strategy = await _history(store)
    report = await build_report(store.db, store.strategies, strategy, store.market_data)  # type: ignore[arg-type]
    assert report.benchmark is not None and len(report.benchmark) == DAYS
    assert report.benchmark[0] == pytest.approx(report.equity[0])  # same starting equity
    assert [t.pnl for t in report.trades] == [Decimal("5"), Decimal("0"), Decimal("-5")]
    page = render_html(report)
    for part in ("equity", "drawdown", "rolling-sharpe", "distribution"):
        assert f"data-chart='{part}'" in page
    assert "Monthly returns" in page and "<th>Jan</th>" in page and "%</td>" in page
    assert "1d 5h" in page and "buy and hold" in page and "Sharpe (365)" in page
    assert "<script" not in page and "src=" not in page and 'href="http' not in page


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
async def test_every_chart_draws_in_a_real_browser_at_a_phones_width(
    store: TradeStore, tmp_path: Path
) -> None:
    from matplotlib.image import imread
    from playwright.async_api import async_playwright

    strategy = await _history(store)
    report = await build_report(store.db, store.strategies, strategy, store.market_data)  # type: ignore[arg-type]
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(report), encoding="utf-8")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 390, "height": 844})
        await page.goto(page_file.as_uri())
        charts = page.locator("figure.chart")
        assert await charts.count() == 4
        for i in range(4):
            pixels = imread(io.BytesIO(await charts.nth(i).screenshot()), format="png")
            box = await charts.nth(i).bounding_box()
            assert box is not None and box["width"] <= 390 and box["height"] > 100
            inked = (pixels[..., :3].mean(axis=2) < 0.9).mean()
            assert inked > 0.01, f"chart {i} looks empty ({inked:.2%} inked)"
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0  # wide tables scroll inside their box, the page does not
        await browser.close()
