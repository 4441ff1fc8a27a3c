"""One backtest from start to files, as the CLI and the worker run it: the candles from a data
source, the replay, the report, and the charts and figures written under the results directory
(`<results>/<backtest id>/chart.png, chart.html, report.json`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jobs.backtest.bars_source import load_bars
from jobs.backtest.candles import Candles
from jobs.backtest.charts import ChartPaths, write_charts
from jobs.backtest.csv_source import load_kline_csv
from jobs.backtest.driver import BacktestOptions, Progress, run_backtest
from jobs.backtest.report import BacktestReport, build_report
from jobs.backtest.sample_data import YEAR_MINUTES, sample_candles
from jobs.domain.dca.config import BotConfig
from jobs.domain.instruments import Instrument, get_instrument
from storage.bars import BarRepository

DEALS_IN_SUMMARY = 20
SAMPLE_NOTE = "bundled sample: a synthetic, seeded year of 1-minute candles (not market data)"


@dataclass(frozen=True, slots=True)
class BacktestOutcome:
    backtest_id: str
    report: BacktestReport
    charts: ChartPaths
    data: str  # where the candles came from

    def summary(self) -> dict[str, Any]:
        """The figures, the first deals and the files: what a tool or the CLI shows."""
        return {"backtest_id": self.backtest_id, "data": self.data, **self.report.figures(),
                "chart_png": str(self.charts.png), "chart_html": str(self.charts.html),
                "first_deals": [d.as_dict() for d in self.report.deals[:DEALS_IN_SUMMARY]]}


@dataclass(frozen=True, slots=True)
class DataSpec:
    """Where the candles come from: the bundled sample (`days` of it), a kline CSV of one pair, or
    Postgres bars of one pair on `venue` in [start, end)."""

    kind: Literal["sample", "csv", "bars"] = "sample"
    days: int = 365
    path: Path | None = None
    symbol: str | None = None
    venue: str | None = None
    start: datetime | None = None
    end: datetime | None = None


async def load_markets(spec: DataSpec, config: BotConfig,
                       bars: BarRepository | None = None) -> tuple[BotConfig, dict[str, Candles], str]:
    """(the config, restricted to the one pair a CSV or Postgres series holds; the candles; a
    note saying where they came from). ValueError says what to change."""
    if spec.kind == "sample":
        return config, sample_markets(config.pairs, spec.days), f"{SAMPLE_NOTE}, {spec.days} days"
    symbol = spec.symbol or config.pairs[0]
    if symbol not in config.pairs:
        raise ValueError(f"symbol {symbol} is not one of the bot's pairs ({', '.join(config.pairs)})")
    one = config.model_copy(update={"pairs": (symbol,)})
    if spec.kind == "csv":
        if spec.path is None:
            raise ValueError("a csv data source needs the file's path")
        return one, {symbol: load_kline_csv(spec.path, symbol)}, f"Binance kline CSV {spec.path.name}"
    if bars is None or spec.venue is None or spec.start is None or spec.end is None:
        raise ValueError("a bars data source needs the venue, a start and an end")
    candles = await load_bars(bars, spec.venue, symbol, spec.start, spec.end)
    return one, {symbol: candles}, f"{spec.venue} 1m bars from Postgres"


def sample_markets(pairs: tuple[str, ...], days: int = 365) -> dict[str, Candles]:
    """The first `days` of each pair's sample year (the same candles whatever the length asked)."""
    minutes = min(YEAR_MINUTES, max(1, days) * 1440)
    return {p: _first(sample_candles(p), minutes) for p in pairs}


def _first(c: Candles, n: int) -> Candles:
    return Candles(c.symbol, c.open_time[:n], c.open[:n], c.high[:n], c.low[:n], c.close[:n], c.volume[:n])


def instruments_for(pairs: tuple[str, ...]) -> dict[str, Instrument]:
    """Each pair's increments from the catalogue (the venues' instrument providers fill it)."""
    return {p: get_instrument(p) for p in pairs}


def new_backtest_id() -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def run_and_write(config: BotConfig, markets: Mapping[str, Candles], instruments: Mapping[str, Instrument],
                  results: Path, *, data: str, options: BacktestOptions | None = None,
                  progress: Progress | None = None, backtest_id: str | None = None) -> BacktestOutcome:
    run = run_backtest(config, markets, instruments, options, progress)
    report = build_report(run)
    backtest_id = backtest_id or new_backtest_id()
    directory = results / backtest_id
    title = f"{config.name}: {', '.join(config.pairs)} {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d}"
    charts = write_charts(report, markets[config.pairs[0]].close, directory, title)
    outcome = BacktestOutcome(backtest_id, report, charts, data)
    document = {**outcome.summary(), "config": config.model_dump(mode="json"),
                "deals_all": [d.as_dict() for d in report.deals]}
    (directory / "report.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    return outcome
