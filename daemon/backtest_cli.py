"""`tradingd backtest`: a DCA bot replayed over 1-minute candles, with a progress bar, the figures as
a table and the chart's paths; `--sweep` runs a grid of variants on both cores instead.

The bot comes from a JSON file (BotConfig's fields) or from a stored bot (its configuration as
saved); the candles from the bundled synthetic sample, a Binance kline CSV, or 1m bars in
Postgres (`tradingd bars import` / `backfill`). The work is jobs/backtest's; this module only
reads the inputs and prints.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import jobs.venues.registry  # noqa: F401  # fills the instrument catalogue the backtest rounds with
from jobs.backtest.driver import BacktestError, BacktestOptions
from jobs.backtest.runner import DataSpec, instruments_for, load_markets, run_and_write
from jobs.backtest.sweep import expand_grid, parse_grid, sweep
from jobs.bots.inputs import parse_input
from jobs.domain.dca.config import BotConfigError
from jobs.domain.instruments import UnknownInstrumentError
from storage.repos import read
from storage.repos.bots import Bots
from storage.repos.store import connect
from storage.settings import Settings

BPS = Decimal(10_000)
SWEEP_ROWS_SHOWN = 20


class BacktestCliError(Exception):
    pass


def read_config_file(config_file: Path) -> dict[str, Any]:
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BacktestCliError(f"{config_file}: {e}") from None
    if not isinstance(data, dict):
        raise BacktestCliError(f"{config_file}: a bot configuration is a JSON object")
    return data


async def bot_config_data(settings: Settings, config: dict[str, Any] | None,
                          bot_id: str | None) -> dict[str, Any]:
    if (config is None) == (bot_id is None):
        raise BacktestCliError("give exactly one of --config FILE.json or --bot-id bot_...")
    if config is not None:
        return config
    store = connect(settings.database_url, pool_size=1)
    try:
        async with read(store.pool) as db:
            bot = await Bots(db).get(bot_id or "")
    finally:
        await store.close()
    if bot is None or bot.deleted:
        raise BacktestCliError(f"no bot {bot_id!r}")
    return dict(bot.config)


async def backtest_command(settings: Settings, console: Console, *, config: dict[str, Any] | None,
                           bot_id: str | None, spec: DataSpec, fee_bps: Decimal | None,
                           balance: Decimal | None, out: Path | None, grid: str | None, metric: str) -> None:
    data = await bot_config_data(settings, config, bot_id)
    try:
        bot = parse_input(data)
        store = connect(settings.database_url, pool_size=1) if spec.kind == "bars" else None
        try:
            bot, markets, note = await load_markets(spec, bot, store.bars if store else None)
        finally:
            if store is not None:
                await store.close()
        instruments = instruments_for(bot.pairs)
    except (BotConfigError, UnknownInstrumentError, ValueError) as e:
        raise BacktestCliError(str(e)) from None
    fee = (fee_bps if fee_bps is not None else settings.paper_fee_bps) / BPS
    options = BacktestOptions(fee_rate=fee, balance=balance)
    if grid:
        _sweep(console, data, grid, metric, markets, instruments, options)
        return
    with Progress(TextColumn("replaying"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("candles", total=len(next(iter(markets.values()))))
        try:
            outcome = run_and_write(bot, markets, instruments, out or settings.backtest_dir, data=note,
                                    options=options,
                                    progress=lambda done, total: bar.update(task, completed=done))
        except BacktestError as e:
            raise BacktestCliError(str(e)) from None
    table = Table(title=f"backtest {outcome.backtest_id}: {escape(bot.name)}", show_header=False)
    for key, value in outcome.report.figures().items():
        table.add_row(key, escape(str(value)))
    console.print(table)
    console.print(f"data: {escape(note)}")
    console.print(f"chart: {outcome.charts.png}\nhtml:  {outcome.charts.html}")


def _sweep(console: Console, base: dict[str, Any], grid: str, metric: str, markets: Any, instruments: Any,
           options: BacktestOptions) -> None:
    try:
        variants = expand_grid(parse_grid(grid))
        with console.status(f"{len(variants)} variants on 2 worker processes"):
            rows = sweep(base, variants, markets, instruments, options, metric=metric)
    except ValueError as e:
        raise BacktestCliError(str(e)) from None
    table = Table(title=f"sweep: {len(rows)} variants by {metric}")
    for col in ("changes", "total_profit", "deals", "max_drawdown", "peak_capital_used",
                "safety_orders_used"):
        table.add_column(col)
    for r in rows[:SWEEP_ROWS_SHOWN]:
        changes = ", ".join(f"{k}={v}" for k, v in r.changes.items())
        if r.figures is None:
            table.add_row(escape(changes), escape(f"refused: {r.error}"), "", "", "", "")
            continue
        f = r.figures
        table.add_row(escape(changes), f["total_profit"], str(f["deals"]), f["max_drawdown"],
                      f["peak_capital_used"], str(f["safety_orders_used"]))
    console.print(table)


def parse_time(value: str | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    t = datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t
