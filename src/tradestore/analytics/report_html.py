"""The HTML report: one self-contained page (charts as inline SVG drawn by matplotlib, no
script, no external file), readable on a phone.

Charts: equity against the benchmark, drawdown (under water, with the five deepest
periods shaded), rolling 30-day Sharpe, the distribution of daily returns; a heat map of
monthly returns; the closed trades; what every figure means.
"""

from __future__ import annotations

import html
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from tradestore.analytics import metrics as m
from tradestore.analytics.report import DEFINITIONS, Report, duration_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROLLING_DAYS = 30
DEEPEST = 5
BLUE, GREY, RED, GREEN = "#1f6feb", "#8c959f", "#cf222e", "#2da44e"

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 1rem;
       max-width: 980px; color: #1f2328; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .6rem; text-align: left; border-bottom: 1px solid #d0d7de; }
td.num { text-align: right; }
.scroll { overflow-x: auto; }
figure { margin: 0; } figure svg { width: 100%; height: auto; }
.heat td { text-align: right; min-width: 3.2rem; }
dl dt { font-weight: 600; margin-top: .4rem; } dl dd { margin-left: 1rem; }
.muted { color: #656d76; }
"""


def render_html(report: Report) -> str:
    name = html.escape(report.strategy.name)
    days = report.days
    span = f"{days[0]} to {days[-1]}" if days else "no closed trade or snapshot yet"
    sections = [
        f"<h1>{name} <small class='muted'>v{html.escape(report.strategy.version)}</small></h1>",
        f"<p class='muted'>{span}; equity from {html.escape(report.source)}; "
        f"generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>",
        "<h2>Summary</h2>",
        _summary(report),
        *_charts(report),
        "<h2>Monthly returns</h2>",
        _monthly(report),
        f"<h2>Closed trades ({len(report.trades)} most recent)</h2>",
        _trades(report),
        "<h2>What the figures mean</h2>",
        _definitions(),
    ]
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{name} — tradestore report</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


# --- charts ---------------------------------------------------------------------------


def _charts(report: Report) -> list[str]:
    if len(report.days) < 2:
        return ["<p class='muted'>Charts need equity on two days or more.</p>"]
    times = np.array(report.days, dtype="datetime64[D]")
    equity = np.asarray(report.equity, dtype=np.float64)
    drawdown = -m.drawdowns(equity)  # under water: 0 at a peak, negative below it
    returns = _returns(equity) if report.source == "snapshots" else np.diff(equity)
    unit = "daily return" if report.source == "snapshots" else "daily P&L"
    return [
        "<h2>Equity</h2>",
        _figure(_equity_chart(times, equity, report), "equity"),
        "<h2>Drawdown</h2>",
        _figure(_drawdown_chart(times, drawdown), "drawdown"),
        f"<h2>Rolling Sharpe ({ROLLING_DAYS} days)</h2>",
        _figure(_rolling_chart(times[1:], returns), "rolling-sharpe"),
        f"<h2>Distribution of {unit}s</h2>",
        _figure(_histogram(returns, unit), "distribution"),
    ]


def _new_figure(height: float = 3.0) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.6, height), layout="constrained")
    axes = figure.add_subplot()
    axes.grid(True, color="#d0d7de", linewidth=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _dated(axes: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _equity_chart(times: np.ndarray, equity: np.ndarray, report: Report) -> Figure:
    from matplotlib.ticker import StrMethodFormatter

    figure, axes = _new_figure()
    axes.plot(times, equity, color=BLUE, linewidth=1.6, label=report.strategy.name)
    if report.benchmark is not None:
        axes.plot(times, report.benchmark, color=GREY, linewidth=1.2, label=report.benchmark_note)
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes.set_ylabel("equity")
    axes.legend(loc="upper left", frameon=False)
    if report.benchmark is None and report.benchmark_note:
        axes.set_title(report.benchmark_note, fontsize=9, color=GREY, loc="right")
    _dated(axes)
    return figure


def _drawdown_chart(times: np.ndarray, drawdown: np.ndarray) -> Figure:
    from matplotlib.ticker import PercentFormatter

    figure, axes = _new_figure(2.6)
    axes.fill_between(times, drawdown, 0, color=RED, alpha=0.25, linewidth=0)
    axes.plot(times, drawdown, color=RED, linewidth=1.0)
    for start, end in _deepest_periods(drawdown, DEEPEST):
        axes.axvspan(times[start], times[end], color=RED, alpha=0.07, linewidth=0)
    axes.set_ylim(min(float(drawdown.min()) * 1.1, -0.001), 0)  # under water: down from 0
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    axes.set_ylabel("below peak")
    _dated(axes)
    return figure


def _rolling_chart(times: np.ndarray, returns: np.ndarray) -> Figure:
    figure, axes = _new_figure(2.6)
    sharpe = _rolling_sharpe(returns, ROLLING_DAYS)
    axes.plot(times, sharpe, color=BLUE, linewidth=1.2)
    axes.axhline(0, color=GREY, linewidth=0.8)
    axes.set_ylabel("Sharpe (365)")
    if np.isnan(sharpe).all():
        axes.set_title(f"needs more than {ROLLING_DAYS} days", fontsize=9, color=GREY)
    _dated(axes)
    return figure


def _histogram(returns: np.ndarray, unit: str) -> Figure:
    from matplotlib.ticker import PercentFormatter

    figure, axes = _new_figure(2.6)
    finite = returns[np.isfinite(returns)]
    axes.hist(finite, bins=min(40, max(5, len(finite) // 3)), color=BLUE, alpha=0.8)
    axes.axvline(0, color=GREY, linewidth=0.8)
    if unit == "daily return":
        axes.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    axes.set_xlabel(unit)
    axes.set_ylabel("days")
    return figure


def _figure(figure: Figure, name: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # inline: no XML prolog
    return f"<figure class='chart' data-chart='{name}'>{svg}</figure>"


# --- series ---------------------------------------------------------------------------


def _returns(equity: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.diff(equity) / equity[:-1]
    return np.where(np.isfinite(returns), returns, 0.0)


def _deepest_periods(drawdown: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The n deepest under-water periods, as (first index below the peak, last index)."""
    periods, start = [], None
    for i, value in enumerate(drawdown):
        if value < 0 and start is None:
            start = i
        elif value >= 0 and start is not None:
            periods.append((start, i))
            start = None
    if start is not None:
        periods.append((start, len(drawdown) - 1))
    return sorted(periods, key=lambda p: float(drawdown[p[0] : p[1] + 1].min()))[:n]


def _rolling_sharpe(returns: np.ndarray, window: int) -> np.ndarray:
    out = np.full(len(returns), np.nan)
    for i in range(window - 1, len(returns)):
        chunk = returns[i - window + 1 : i + 1]
        deviation = float(chunk.std(ddof=1))
        if deviation > 0:
            out[i] = float(chunk.mean()) / deviation * np.sqrt(365)
    return out


# --- tables ---------------------------------------------------------------------------


def _summary(report: Report) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td class='num'>{html.escape(_text(v))}</td></tr>"
        for k, v in report.summary.items()
    )
    return f"<div class='scroll'><table>{rows}</table></div>"


def _monthly(report: Report) -> str:
    """Month-over-month returns of the last equity of each month, as a year x month grid
    coloured green (gain) to red (loss)."""
    if report.source != "snapshots" or len(report.days) < 2:
        return "<p class='muted'>Needs portfolio snapshots on two days or more.</p>"
    month_end: dict[tuple[int, int], float] = {}
    for day, value in zip(report.days, report.equity, strict=True):
        month_end[(day.year, day.month)] = value
    months = sorted(month_end)
    previous = report.equity[0]
    grid: dict[int, dict[int, float]] = {}
    for year, month in months:
        value = month_end[(year, month)]
        grid.setdefault(year, {})[month] = value / previous - 1 if previous else 0.0
        previous = value
    head = "".join(f"<th>{date(2000, m, 1):%b}</th>" for m in range(1, 13))
    body = "".join(
        f"<tr><th>{year}</th>"
        + "".join(_heat_cell(grid[year].get(month)) for month in range(1, 13))
        + "</tr>"
        for year in sorted(grid)
    )
    return f"<div class='scroll'><table class='heat'><tr><th></th>{head}</tr>{body}</table></div>"


def _heat_cell(value: float | None) -> str:
    if value is None:
        return "<td></td>"
    strength = min(abs(value) / 0.10, 1.0)  # full colour at 10% in a month
    colour = (45, 164, 78) if value >= 0 else (207, 34, 46)
    return (
        f"<td style='background: rgba{(*colour, round(0.12 + 0.6 * strength, 2))}'>"
        f"{value:+.1%}</td>"
    )


def _trades(report: Report) -> str:
    if not report.trades:
        return "<p class='muted'>No closed trade.</p>"
    head = (
        "<tr><th>entry</th><th>exit</th><th>symbol</th><th>side</th><th>qty</th>"
        "<th>entry price</th><th>exit price</th><th>P&amp;L</th><th>P&amp;L %</th>"
        "<th>duration</th><th>reason</th></tr>"
    )
    rows = "".join(
        "<tr>"
        f"<td>{t.entry_time:%Y-%m-%d %H:%M}</td><td>{t.exit_time:%Y-%m-%d %H:%M}</td>"
        f"<td>{html.escape(t.symbol)}</td><td>{html.escape(t.side)}</td>"
        f"<td class='num'>{_text(t.quantity)}</td><td class='num'>{_text(t.entry_price)}</td>"
        f"<td class='num'>{_text(t.exit_price)}</td><td class='num'>{_text(t.pnl)}</td>"
        f"<td class='num'>{_text(t.pnl_percent)}</td>"
        f"<td>{duration_text(t.duration.total_seconds() / 60)}</td>"
        f"<td>{html.escape(t.exit_reason or '-')}</td></tr>"
        for t in report.trades
    )
    return f"<div class='scroll'><table>{head}{rows}</table></div>"


def _definitions() -> str:
    items = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(meaning)}</dd>"
        for term, meaning in DEFINITIONS.items()
    )
    return f"<dl>{items}</dl>"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"{value:,.8f}".rstrip("0").rstrip(".")
    if isinstance(value, float):
        return f"{value:,.4f}"
    return str(value)
