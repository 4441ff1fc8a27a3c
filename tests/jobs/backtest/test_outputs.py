"""A backtest's outputs: a sweep's figures equal single runs; the charts are written (PNG, and HTML
that references nothing outside itself); `tradingd backtest` on a small kline CSV, and --sweep."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from daemon.cli import app
from jobs.backtest.driver import run_backtest
from jobs.backtest.report import build_report
from jobs.backtest.runner import run_and_write, sample_markets
from jobs.backtest.sweep import expand_grid, parse_grid, sweep, with_changes
from jobs.domain.dca.config import parse_bot_config
from tests.jobs.backtest.paths import BTC, T0, ramp

BASE = {"name": "sweep", "pairs": ["BTC/USDT"], "base_order": {"volume": "20"},
        "safety_orders": {"volume": "40", "step_percent": "1.5", "volume_scale": "1.3", "step_scale": "1.2",
                          "max_count": 5, "active_count": 2},
        "take_profit": {"percent": "2"}}


def test_a_sweep_equals_the_runs_one_by_one() -> None:
    markets = sample_markets(("BTC/USDT",), days=10)
    variants = expand_grid(parse_grid("safety_orders.step_percent=1,2;take_profit.percent=1,3"))
    assert len(variants) == 4
    assert variants[0] == {"safety_orders.step_percent": "1", "take_profit.percent": "1"}
    rows = sweep(BASE, variants, markets, {"BTC/USDT": BTC}, metric="total_profit", workers=2)
    assert len(rows) == 4
    for row in rows:
        config = parse_bot_config(with_changes(BASE, row.changes))
        single = build_report(run_backtest(config, markets, {"BTC/USDT": BTC})).figures()
        assert row.figures == single
    profits = [row.metric("total_profit") for row in rows]
    assert profits == sorted(profits, reverse=True)
    refused = sweep(BASE, [{"take_profit.percent": "-1"}], markets, {"BTC/USDT": BTC}, workers=1)
    assert refused[0].figures is None and "take_profit" in (refused[0].error or "")


def test_charts_are_written_and_the_html_stands_alone(tmp_path: Path) -> None:
    markets = sample_markets(("BTC/USDT",), days=60)
    outcome = run_and_write(parse_bot_config(BASE), markets, {"BTC/USDT": BTC}, tmp_path, data="sample")
    png, page = outcome.charts.png, outcome.charts.html
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = page.read_text(encoding="utf-8")
    assert "<svg" in text and "</html>" in text
    assert not re.search(r"https?:", text), "the page must not reference anything outside itself"
    assert not re.search(r"<script|<link|src=", text)
    report = json.loads((tmp_path / outcome.backtest_id / "report.json").read_text())
    assert report["deals"] == outcome.report.closed_deals > 0 and report["chart_png"] == str(png)


def kline_csv(path: Path, closes: list[float]) -> None:
    rows = []
    for i, c in enumerate(closes):
        t = (T0 + 60 * i) * 1000
        rows.append(f"{t},{c:.2f},{c + 5:.2f},{c - 5:.2f},{c:.2f},1.5,{t + 59_999},{c * 1.5:.2f},10,0.7,0,0")
    path.write_text("\n".join(rows) + "\n")


def test_the_cli_backtests_a_kline_csv(tmp_path: Path) -> None:
    csv = tmp_path / "BTCUSDT-1m.csv"
    kline_csv(csv, [*ramp(60000, 57000, 60), *ramp(57000, 62000, 60)] * 3)
    config = tmp_path / "bot.json"
    config.write_text(json.dumps(BASE))
    runner = CliRunner()
    out = tmp_path / "results"
    result = runner.invoke(app, ["backtest", "--config", str(config), "--data", "csv", "--csv", str(csv),
                                 "--symbol", "BTC/USDT", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "total_profit" in result.output and "chart.html" in result.output
    (run_dir,) = list(out.iterdir())
    assert (run_dir / "chart.png").exists() and (run_dir / "chart.html").exists()
    figures = json.loads((run_dir / "report.json").read_text())
    assert figures["candles"] == 360 and figures["deals"] >= 3
    swept = runner.invoke(app, ["backtest", "--config", str(config), "--data", "csv", "--csv", str(csv),
                                "--sweep", "take_profit.percent=1,2,3", "--metric", "deals"])
    assert swept.exit_code == 0, swept.output
    assert "3 variants by deals" in swept.output
    bad = runner.invoke(app, ["backtest", "--config", str(config), "--data", "csv"])
    assert bad.exit_code == 2 and "needs the file" in bad.output


def test_the_sample_year_is_the_same_on_every_machine() -> None:
    """The bundled sample is generated from a seed: pinned here, so a change of the generator (or of
    numpy's stream) is noticed rather than silently changing every backtest's figures."""
    from jobs.backtest.sample_data import YEAR_MINUTES, sample_candles

    c = sample_candles("BTC/USDT")
    assert len(c) == YEAR_MINUTES and int(c.open_time[0]) == T0
    assert c.close[:5].tolist() == [59999.36, 59999.13, 60002.31, 59971.04, 59987.52]
    assert float(c.close[-1]) == 34048.17
    assert bool((c.low <= c.open).all() and (c.low <= c.close).all() and (c.high >= c.open).all()
                and (c.high >= c.close).all())
