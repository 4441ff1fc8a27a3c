"""DCA bot backtests (issue 11 item 5): backtest_bot and compare_backtests.

The bridge stays thin: it checks the configuration (every problem at its field, as create_dca_bot
does), takes a stored bot's from the state view, and queues a command; the worker replays the
candles on the live deal engine (jobs/backtest/command.py) and answers with the figures and the
chart's paths. A backtest that outlasts the tool's wait is 'pending': get_command_status answers.

Annotations: not read-only (each run records a command and writes its charts and report under
TRADINGD_BACKTEST_DIR), but it trades nothing and changes no bot, order or balance: not
destructive; the same inputs give the same figures: idempotent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.bots.inputs import parse_input
from jobs.commands import BacktestBot, CompareBacktests, new_command_id
from jobs.domain.dca.config import BotConfigError
from mcp_bridge.context import Bridge, CommandOutcome, Symbol, writes
from mcp_bridge.param_schema import CompactSchema
from storage.state.bots import BotReader

BotId = Annotated[str | None, Field(pattern=r"^bot_[A-Za-z0-9]+$", max_length=40,
                                    description="a stored bot (or give config)"), CompactSchema()]
Config = Annotated[dict[str, Any] | None, Field(description="BotConfig fields, as create_dca_bot"),
                   CompactSchema()]
Source = Annotated[Literal["sample", "bars"], Field(
    description="sample: a bundled synthetic year; bars: 1m bars in Postgres")]
Days = Annotated[int, Field(ge=1, le=365, description="sample: days replayed")]
When = Annotated[datetime | None, Field(description="bars: UTC range start/end"), CompactSchema()]
PairParam = Annotated[Symbol | None, Field(description="bars: the pair"), CompactSchema()]
ANNOTATIONS = writes(destructive=False, idempotent=True)


class BacktestResult(BaseModel):
    command: CommandOutcome
    backtest: dict[str, Any] | None = None  # figures, first deals, chart_png / chart_html paths


class CompareResult(BaseModel):
    command: CommandOutcome
    data: str | None = None
    variants: list[dict[str, Any]] = Field(default_factory=list)  # variant 0: the config unchanged


def register(mcp: FastMCP, bridge: Bridge) -> None:
    async def config_of(tool: str, bot_id: str | None, config: dict[str, Any] | None) -> dict[str, Any]:
        if (bot_id is None) == (config is None):
            raise ToolError(f"{tool}: give bot_id (a stored bot) or config (BotConfig fields), not both")
        if bot_id is not None:
            view = await BotReader(bridge.redis).bot(bot_id)
            if view is None:
                raise ToolError(f"no bot {bot_id!r}; list_bots shows the ids")
            config = view.config
        assert config is not None
        try:
            parse_input(config)
        except BotConfigError as e:
            problems = "; ".join(e.problems)
            raise ToolError(f"{tool} refused, {len(e.problems)} problem(s): {problems}") from None
        return config

    def data_args(source: str, days: int, symbol: str | None, start: datetime | None,
                  end: datetime | None) -> dict[str, Any]:
        if source == "bars" and (start is None or end is None):
            raise ToolError("source 'bars' needs start and end (UTC); 'tradingd bars import' fills them")
        return {"source": source, "days": days, "symbol": symbol, "start": start, "end": end}

    @mcp.tool(title="Backtest a DCA bot", annotations=ANNOTATIONS)
    async def backtest_bot(bot_id: BotId = None, config: Config = None, source: Source = "sample",
                           days: Days = 365, symbol: PairParam = None, start: When = None,
                           end: When = None) -> BacktestResult:
        """Replay a bot (stored, or a config) on 1-minute candles with the live deal engine; trades
        nothing. Returns deals, profit, max drawdown, peak capital, safety orders used, time in
        deals and the paths of a PNG and a self-contained HTML chart."""
        data = await config_of("backtest_bot", bot_id, config)
        cmd = BacktestBot(command_id=new_command_id("backtest"), config=data,
                          **data_args(source, days, symbol, start, end))
        outcome = await bridge.run(cmd)
        return BacktestResult(command=outcome, backtest=outcome.details)

    @mcp.tool(title="Compare DCA bot variants", annotations=ANNOTATIONS)
    async def compare_backtests(
        variants: Annotated[list[dict[str, Any]], Field(
            min_length=1, max_length=10,
            description="each {dotted.field: value}, e.g. {\"take_profit.percent\": 3}")],
        bot_id: BotId = None, config: Config = None, source: Source = "sample", days: Days = 365,
        symbol: PairParam = None, start: When = None, end: When = None,
    ) -> CompareResult:
        """Backtest a bot and up to 10 variants of it on the same candles and return a table of
        their key figures (profit, deals, drawdown, capital, safety orders), the unchanged config
        first. A variant that is not a valid configuration is listed with its problems."""
        data = await config_of("compare_backtests", bot_id, config)
        cmd = CompareBacktests(command_id=new_command_id("backtest"), config=data, variants=variants,
                               **data_args(source, days, symbol, start, end))
        outcome = await bridge.run(cmd)
        details = outcome.details or {}
        return CompareResult(command=outcome, data=details.get("data"),
                             variants=details.get("variants") or [])
