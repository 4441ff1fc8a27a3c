"""A backtest's charts: the price with each deal's entry and exit, and the equity curve, written as
a PNG and as one self-contained HTML page (the SVG inlined, no script, no stylesheet, no link
out: it opens from disk anywhere, offline, and can be mailed as one file).

matplotlib's object API (Figure, not pyplot) keeps no global state, so charts can be drawn from a
worker thread. A year of minutes is thinned to at most MAX_POINTS per line, keeping each
bucket's low and high so a drawdown or a wick stays visible.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from jobs.backtest.report import BacktestReport

MAX_POINTS = 2_000
MAX_MARKERS = 2_000
DEALS_LISTED = 500
QUANTUM = Decimal("0.00000001")
_NAMESPACE_OR_METADATA = re.compile(r'\s+xmlns(:\w+)?="[^"]*"|<metadata>.*?</metadata>', re.DOTALL)


@dataclass(frozen=True, slots=True)
class ChartPaths:
    png: Path
    html: Path


def thin(times: np.ndarray, values: np.ndarray,
         max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ~max_points: each bucket's lowest and highest value, in time order."""
    n = len(values)
    if n <= max_points:
        return times, values
    k = -(-n // (max_points // 2))
    cut = n // k * k
    v = values[:cut].reshape(-1, k)
    t = times[:cut].reshape(-1, k)
    lo, hi = v.argmin(axis=1), v.argmax(axis=1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    rows = np.arange(len(v))
    out_t = np.column_stack((t[rows, first], t[rows, second])).ravel()
    out_v = np.column_stack((v[rows, first], v[rows, second])).ravel()
    return np.concatenate((out_t, times[cut:])), np.concatenate((out_v, values[cut:]))


def _dates(epoch_s: np.ndarray) -> np.ndarray:
    return epoch_s.astype("datetime64[s]")


def draw(report: BacktestReport, close: np.ndarray, title: str) -> Figure:
    fig = Figure(figsize=(12, 7), dpi=100)
    ax_price, ax_equity = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    t, p = thin(report.equity_times, close)
    ax_price.plot(_dates(t), p, lw=0.7, color="#555555", label=report.pairs[0])
    first_pair = [d for d in report.deals if d.pair == report.pairs[0]][:MAX_MARKERS]
    entries = [(d.opened_at, float(d.entry_price)) for d in first_pair if d.entry_price is not None]
    exits = [(d.closed_at, float(d.exit_price)) for d in first_pair
             if d.closed_at and d.exit_price is not None]
    if entries:
        ax_price.scatter([_naive(x) for x, _ in entries], [y for _, y in entries], marker="^", s=18,
                         color="#1a9850", label="deal entry (average)", zorder=3)
    if exits:
        ax_price.scatter([_naive(x) for x, _ in exits], [y for _, y in exits], marker="v", s=18,
                         color="#d73027", label="deal exit", zorder=3)
    ax_price.set_ylabel(f"{report.pairs[0]} close")
    ax_price.legend(loc="upper left", fontsize=8)
    ax_price.set_title(title, fontsize=11)
    et, ev = thin(report.equity_times, report.equity)
    ax_equity.plot(_dates(et), ev, lw=0.9, color="#2c7bb6")
    ax_equity.axhline(0, lw=0.5, color="#999999")
    ax_equity.set_ylabel("equity (profit and loss, quote)")
    ax_equity.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _naive(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None)


def svg_text(fig: Figure) -> str:
    """The figure as inline SVG for HTML5: no XML prolog, namespaces or metadata (which name
    URLs); the HTML parser knows SVG's elements and xlink attributes without them."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return _NAMESPACE_OR_METADATA.sub("", text)


def page(report: BacktestReport, svg: str, title: str) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in report.figures().items())
    head = ("<tr><th>deal</th><th>pair</th><th>status</th><th>opened</th><th>closed</th><th>entry</th>"
            "<th>exit</th><th>SOs</th><th>profit</th><th>%</th><th>fees</th><th>hours</th></tr>")
    deals = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (
            d.deal_id, d.pair, d.status, d.opened_at.strftime("%Y-%m-%d %H:%M"),
            d.closed_at.strftime("%Y-%m-%d %H:%M") if d.closed_at else "open", d.entry_price or "",
            d.exit_price or "", d.safety_orders_used, d.profit.quantize(QUANTUM),
            d.profit_percent, d.fees, round(d.duration_s / 3600, 1))) + "</tr>"
        for d in report.deals[:DEALS_LISTED])
    more = f"<p>{len(report.deals) - DEALS_LISTED} more deals not listed.</p>" \
        if len(report.deals) > DEALS_LISTED else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
            "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
            "th{background:#f4f4f4}svg{max-width:100%;height:auto}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Synthetic or historical candles as stated by the data source; "
            "profit net of fees.</p>"
            f"{svg}<h2>Figures</h2><table>{rows}</table><h2>Deals</h2><table>{head}{deals}</table>{more}"
            "</body></html>\n")


def write_charts(report: BacktestReport, close: np.ndarray, directory: Path, title: str) -> ChartPaths:
    """chart.png and chart.html in `directory` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    fig = draw(report, close, title)
    png = directory / "chart.png"
    fig.savefig(png, format="png", metadata={"Software": None})
    out = directory / "chart.html"
    out.write_text(page(report, svg_text(fig), title), encoding="utf-8")
    return ChartPaths(png, out)
