"""A backtest's charts: the price with each deal's entry and exit, and the equity curve, written as
a PNG and as one self-contained HTML page (the SVG inlined, no script, no stylesheet, no link
out: it opens from disk anywhere, offline, and can be mailed as one file).

Why it is drawn the way it is (a chart must cost well under the replay it shows; the year's
replay takes ~0.1 s):
- matplotlib's object API (Figure on an explicit Agg canvas, not pyplot) keeps no global figure
  state, so charts can be drawn from a worker thread, and no backend is picked from the
  environment.
- A year of minutes is thinned to at most MAX_POINTS per line, keeping each bucket's low and
  high so a drawdown or a wick stays visible; deals are markers and one segment each (entry to
  exit), never one artist per candle.
- The layout is fixed (margins, label positions, the date ticks computed once): matplotlib's
  automatic layout (tight_layout, auto-placed labels and title, AutoDateLocator on every draw)
  measures every text several times per render and was most of the cost.
- The SVG keeps its text as text (svg.fonttype "none"), not one path per glyph: smaller, cheaper,
  and the page's labels can be selected and searched. This and the other matplotlib settings
  are applied once per process, with the figure below; this module is the process's only plotter.
- One figure per process, reused by every chart (`_Plotter`, under `_DRAWING`: the worker draws
  from threads). Building the axes and creating their ticks on a fresh figure's first render
  cost as much as a render; a chart now only replaces its data, deals, texts, legend and limits
  (recomputed from its own artists, the zero line added after them as on a fresh figure), so
  its pixels and SVG are a fresh figure's, byte for byte (tests/jobs/backtest/test_charts.py). The PNG
  (Agg) and the SVG are two renders of it; the PNG is compressed at zlib level 1 (same pixels,
  ~10 % larger file, a third less encoding time). With a fixed x label position (there is none)
  the shared dates' labels are not measured again for it. Profiled with cProfile on the bench's
  year: ~30 % less CPU per chart than one fresh figure per chart (docs/benchmarks.md).
"""

from __future__ import annotations

import html
import io
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.dates import AutoDateLocator, DateFormatter, date2num, num2date
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from jobs.backtest.report import BacktestReport, DealFigures

_DRAWING = threading.Lock()  # held while the process's one figure is drawn (module docstring)
MAX_POINTS = 2_000
MAX_MARKERS = 2_000
DEALS_LISTED = 500
QUANTUM = Decimal("0.00000001")
_NAMESPACE = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')


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


def _x(epoch_s: np.ndarray) -> np.ndarray:
    """Epoch seconds as matplotlib date numbers: plain floats, so no unit conversion per draw."""
    return np.asarray(date2num(np.asarray(epoch_s, dtype=np.int64).astype("datetime64[s]")))


def _epoch(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp())


def _fixed_date_ticks(ax: Axes) -> None:
    """Date ticks chosen once for the axis' span (AutoDateLocator would choose again on every
    render, twice per file), at most 8 so 'YYYY-MM-DD' labels fit unrotated."""
    lo, hi = ax.get_xlim()
    if hi > lo:
        start, end = num2date(lo), num2date(hi)
        ticks = AutoDateLocator(minticks=3, maxticks=8).tick_values(start, end)
        ax.xaxis.set_major_locator(FixedLocator([t for t in ticks if lo <= t <= hi]))
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d" if hi - lo > 3 else "%m-%d %H:%M"))


def _deal_marks(ax: Axes, deals: list[DealFigures]) -> None:
    """Each deal: a marker at its opening and a level at its average entry held until it closed
    (green when the deal made money, red when not), and a marker at its average exit. The average
    is the deal's final one (after its safety orders), so the entry marker can sit off the price."""
    entered = [d for d in deals if d.entry_price is not None]
    closed = [d for d in entered if d.closed_at is not None and d.exit_price is not None]
    if entered:
        ax.scatter(_x(np.array([_epoch(d.opened_at) for d in entered])),
                   [float(d.entry_price) for d in entered if d.entry_price is not None], marker="^",
                   s=18, color="#1a9850", label="deal entry (average)", zorder=4)
    if closed:
        x0 = _x(np.array([_epoch(d.opened_at) for d in closed]))
        x1 = _x(np.array([_epoch(d.closed_at) for d in closed if d.closed_at]))
        entry = np.array([float(d.entry_price) for d in closed if d.entry_price is not None])
        colors = ["#1a9850" if d.profit > 0 else "#d73027" for d in closed]
        held = np.stack((np.column_stack((x0, entry)), np.column_stack((x1, entry))), axis=1)
        ax.add_collection(LineCollection(list(held), colors=colors, linewidths=1.5, alpha=0.8, zorder=3,
                                         label="deal held (at its average entry)"), autolim=False)
        ax.scatter(x1, [float(d.exit_price) for d in closed if d.exit_price is not None], marker="v",
                   s=18, color="#d73027", label="deal exit (average)", zorder=4)


class _Plotter:
    """The process's one figure (module docstring): axes, lines, grid and fixed layout built once;
    `draw` replaces what belongs to a chart. Used under `_DRAWING`, by one chart at a time."""

    def __init__(self) -> None:
        matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "tradingd-backtest"})
        self.fig = Figure(figsize=(12, 7), dpi=100)
        FigureCanvasAgg(self.fig)
        self.fig.subplots_adjust(left=0.08, right=0.985, top=0.95, bottom=0.06, hspace=0.06)
        self.price_ax, self.equity_ax = self.fig.subplots(2, 1, sharex=True,
                                                          gridspec_kw={"height_ratios": [3, 2]})
        (self.price,) = self.price_ax.plot([], [], lw=0.7, color="#555555")
        (self.equity,) = self.equity_ax.plot([], [], lw=0.9, color="#2c7bb6")
        self.zero = self.equity_ax.axhline(0, lw=0.5, color="#999999")
        self.equity_ax.set_ylabel("equity (profit and loss, quote)")
        for ax in (self.price_ax, self.equity_ax):
            ax.yaxis.set_label_coords(-0.065, 0.5)  # placed: not measured against the tick labels
            ax.xaxis.set_label_coords(0.5, 0.0)  # no x label: not placed against both axes' dates
            ax.grid(True, lw=0.4, color="#e4e4e4")
            ax.set_axisbelow(True)

    def draw(self, report: BacktestReport, close: np.ndarray, title: str) -> Figure:
        pair = report.pairs[0]
        for collection in list(self.price_ax.collections):  # the previous chart's deals
            collection.remove()
        t, p = thin(report.equity_times, close)
        self.price.set_data(_x(t), p)
        self.price.set_label(pair)
        _deal_marks(self.price_ax, [d for d in report.deals if d.pair == pair][:MAX_MARKERS])
        self.price_ax.set_ylabel(f"{pair} close")
        self.price_ax.legend(loc="upper left", fontsize=8)
        self.price_ax.set_title(title, fontsize=11, y=1.0)  # y given: not re-placed at every render
        et, ev = thin(report.equity_times, report.equity)
        self.equity.set_data(_x(et), ev)
        self.zero.remove()  # added again below, after the limits, as a fresh figure would
        for ax in (self.price_ax, self.equity_ax):  # limits from this chart's artists only
            ax.relim()
        for ax in (self.price_ax, self.equity_ax):  # after both: the x limits are shared
            ax.autoscale_view()
        self.zero = self.equity_ax.axhline(0, lw=0.5, color="#999999")  # 0 stays in view
        _fixed_date_ticks(self.equity_ax)
        return self.fig


@cache
def _plotter() -> _Plotter:
    return _Plotter()


def draw(report: BacktestReport, close: np.ndarray, title: str) -> Figure:
    """The chart's figure: the process's one figure, valid until the next chart is drawn (the
    caller holds `_DRAWING` when threads may draw at once, as `write_charts` does)."""
    return _plotter().draw(report, close, title)


def svg_text(fig: Figure) -> str:
    """The figure as inline SVG for HTML5: no XML prolog, no namespaces (which name URLs; the
    HTML parser knows SVG's elements and xlink attributes without them), no metadata."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buf.getvalue()
    start = text.index("<svg")
    end = text.index(">", start) + 1  # only the root tag carries namespaces: edit just that
    return _NAMESPACE.sub("", text[start:end]) + text[end:]


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
    png, out = directory / "chart.png", directory / "chart.html"
    with _DRAWING:
        fig = draw(report, close, title)
        fig.savefig(png, format="png", metadata={"Software": None}, pil_kwargs={"compress_level": 1})
        svg = svg_text(fig)
    out.write_text(page(report, svg, title), encoding="utf-8")
    return ChartPaths(png, out)
