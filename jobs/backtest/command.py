"""The worker's backtest commands (backtest_bot, compare_backtests): ARCHITECTURE.md flow 1 for
work that only computes. The command is claimed in one transaction (a re-run finds it final and
answers the stored outcome), the backtest runs outside any transaction in a thread (CPU-bound:
the worker's event loop keeps serving other jobs and its heartbeat), and the outcome (figures and
the chart's paths, or the variants' table) is stored, audited and published in a second one.

A backtest trades nothing: the bot's configuration is parsed as create_dca_bot parses it and
replayed on the bundled synthetic sample or on 1m bars in Postgres; fees are the pair's venue's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobs.backtest.driver import BacktestError, BacktestOptions, run_backtest
from jobs.backtest.report import build_report
from jobs.backtest.runner import DataSpec, instruments_for, load_markets, run_and_write
from jobs.backtest.sweep import with_changes
from jobs.bots.inputs import parse_input, with_defaults
from jobs.commands import BACKTEST_COMMANDS, BacktestBot, CommandResult, CompareBacktests
from jobs.domain.dca.config import BotConfig, BotConfigError
from jobs.domain.instruments import UnknownInstrumentError
from jobs.effects import effect
from jobs.ledger import claim_command, finish_command
from jobs.orders import _result
from jobs.resources import Resources
from storage.values import FINAL_COMMAND_STATUSES

COMPARED = ("total_profit", "profit_percent_of_capital", "deals", "wins", "losses", "max_drawdown",
            "max_drawdown_percent", "peak_capital_used", "safety_orders_used", "time_in_deals_percent",
            "fees")


async def backtest_command(res: Resources, cmd: BacktestBot) -> CommandResult:
    async with effect(res) as (db, fx):
        row = await claim_command(db, cmd)
        if row.status in FINAL_COMMAND_STATUSES:
            fx.command = row
    if fx.command is not None:
        return _result(fx.command)
    try:
        message, details = await _run(res, cmd)
        status = "succeeded"
    except (BotConfigError, BacktestError, UnknownInstrumentError, ValueError) as e:
        status, message, details = "rejected", str(e), {}
    async with effect(res) as (db, fx):
        await finish_command(db, fx, cmd.command_id, status, message, **details)  # type: ignore[arg-type]
    assert fx.command is not None
    return _result(fx.command)


async def _run(res: Resources, cmd: BacktestBot) -> tuple[str, dict[str, Any]]:
    config = parse_input(cmd.config)
    spec = DataSpec(kind=cmd.source, days=cmd.days, symbol=cmd.symbol, start=cmd.start, end=cmd.end,
                    venue=res.venue_for(cmd.symbol or config.pairs[0]))
    config, markets, note = await load_markets(spec, config, res.store.bars)
    instruments = instruments_for(config.pairs)
    options = BacktestOptions(fee_rate=res.fee_rate_of(res.venue_for(config.pairs[0])))
    if isinstance(cmd, CompareBacktests):
        table = await asyncio.to_thread(_compare, cmd, config, markets, instruments, options)
        return f"{len(table)} variants compared on {note}", {"data": note, "variants": table}
    outcome = await asyncio.to_thread(run_and_write, config, markets, instruments,
                                      res.settings.backtest_dir, data=note, options=options,
                                      backtest_id=cmd.command_id.replace(":", "-"))
    f = outcome.report.figures()
    return (f"{f['deals']} deals, profit {f['total_profit']} {config.quote_currency}, max drawdown "
            f"{f['max_drawdown']}; chart {outcome.charts.html}", outcome.summary())


def _compare(cmd: CompareBacktests, config: BotConfig, markets: Any, instruments: Any,
             options: BacktestOptions) -> list[dict[str, Any]]:
    """Each variant's key figures (the base configuration first, as variant 0 with no changes)."""
    base = {**with_defaults(cmd.config), "pairs": list(config.pairs)}
    rows: list[dict[str, Any]] = []
    for changes in [{}, *cmd.variants]:
        try:
            variant = parse_input(with_changes(base, changes))
            figures = build_report(run_backtest(variant, markets, instruments, options)).figures()
        except (BotConfigError, BacktestError) as e:
            rows.append({"changes": changes, "refused": str(e)})
            continue
        rows.append({"changes": changes, **{k: figures[k] for k in COMPARED}})
    return rows


async def backtest_command_job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The arq job (jobs/worker.py FUNCTIONS) for both backtest commands."""
    cmd = BACKTEST_COMMANDS[payload["kind"]].model_validate(payload)
    return (await backtest_command(ctx["res"], cmd)).model_dump(mode="json")
