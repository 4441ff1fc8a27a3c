"""A backtest's charts stay cheap without hiding anything: a long series is thinned to each
bucket's low and high (a one-minute crash survives), the figure plots at most MAX_POINTS per
line and one artist per deal kind (not per candle), and the HTML's SVG keeps its text as text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from jobs.backtest.charts import MAX_POINTS, _plotter, draw, svg_text, thin, write_charts
from jobs.backtest.driver import run_backtest
from jobs.backtest.report import build_report
from jobs.backtest.runner import sample_markets
from jobs.domain.dca.config import parse_bot_config
from tests.jobs.backtest.paths import BTC
from tests.jobs.backtest.test_outputs import BASE

YEAR = 525_600


def test_thinning_keeps_every_buckets_low_and_high() -> None:
    rng = np.random.default_rng(7)
    values = np.cumsum(rng.standard_normal(YEAR))
    crash = 300_001
    values[crash] = values.min() - 500  # one minute's drawdown, far below everything else
    values[crash + 1] = values.max() + 500  # and the next minute's spike
    times = np.arange(YEAR, dtype=np.int64) * 60
    t, v = thin(times, values)
    assert len(v) <= MAX_POINTS + 1_000 and len(t) == len(v)
    assert bool(np.all(np.diff(t) > 0)), "points stay in time order"
    assert v.min() == values[crash] and v.max() == values[crash + 1]
    assert t[v.argmin()] == times[crash] and t[v.argmax()] == times[crash + 1]
    k = -(-YEAR // (MAX_POINTS // 2))  # the bucket size: each bucket's extremes are kept
    for b in (0, 17, 299):
        bucket = values[b * k:(b + 1) * k]
        assert bucket.min() in v and bucket.max() in v
    short = np.arange(10.0)
    assert thin(short.astype(np.int64), short)[1].tolist() == short.tolist()


def test_the_figure_plots_thinned_lines_and_one_collection_per_deal_kind(tmp_path: Path) -> None:
    markets = sample_markets(("BTC/USDT",), days=120)
    report = build_report(run_backtest(parse_bot_config(BASE), markets, {"BTC/USDT": BTC}))
    assert report.candles == 120 * 1440 and report.closed_deals > 3
    fig = draw(report, markets["BTC/USDT"].close, "a title")
    price_ax, equity_ax = fig.axes
    for ax in (price_ax, equity_ax):
        for line in ax.get_lines():
            assert len(np.asarray(line.get_xdata())) <= MAX_POINTS + 1_000
    markers = [c for c in price_ax.collections if isinstance(c, PathCollection)]
    assert [len(np.asarray(c.get_offsets())) for c in markers] == [len(report.deals), report.closed_deals]
    (held,) = [c for c in price_ax.collections if isinstance(c, LineCollection)]
    assert len(held.get_segments()) == report.closed_deals
    paths = write_charts(report, markets["BTC/USDT"].close, tmp_path, "a title")
    page = paths.html.read_text(encoding="utf-8")
    assert ">equity (profit and loss, quote)</text>" in page, "the SVG's labels are text, not glyph paths"
    assert "<metadata" not in page and "xmlns" not in page


def _rendered(fig: Figure) -> tuple[bytes, str]:
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    return bytes(canvas.buffer_rgba()), svg_text(fig)


def test_the_reused_figure_draws_what_a_fresh_one_draws() -> None:
    """One figure serves every chart of a process: nothing of a chart (deals, limits, texts) may
    stay in the next one. A chart without deals, whose equity is flat at 0, is the sharpest check:
    its limits come from the zero line alone (which must not be measured through the previous
    chart's scales)."""
    markets = sample_markets(("BTC/USDT",), days=30)
    close = markets["BTC/USDT"].close
    dealing = build_report(run_backtest(parse_bot_config(BASE), markets, {"BTC/USDT": BTC}))
    day = sample_markets(("BTC/USDT",), days=1)
    short = build_report(run_backtest(parse_bot_config(BASE), day, {"BTC/USDT": BTC}))
    never = {**BASE, "start_conditions": [{"kind": "rsi", "timeframe": "15m", "period": 14, "below": "1"}]}
    idle = build_report(run_backtest(parse_bot_config(never), markets, {"BTC/USDT": BTC}))
    assert dealing.closed_deals > 1 and not idle.deals and not idle.equity.any()
    charts = {"dealing": (dealing, close), "short": (short, day["BTC/USDT"].close), "idle": (idle, close)}
    fresh = {}
    for name, (report, prices) in charts.items():
        _plotter.cache_clear()
        fresh[name] = _rendered(draw(report, prices, name))
    _plotter.cache_clear()
    for name in ("dealing", "short", "idle", "dealing"):
        report, prices = charts[name]
        assert _rendered(draw(report, prices, name)) == fresh[name], f"{name} after another chart"
