"""DCA bots (issue 11, tool names from seed 001): create, change, clone, delete, enable, disable,
read one, list them.

A bot's configuration is one JSON object (`config`, the fields of BotConfig: 3Commas's bot fields,
jobs/domain/dca/config.py), not forty parameters: the tool list stays short, and
get_strategy_list(strategy='config') lists the fields. The bridge parses it first and refuses a
bad one with every problem at its field; the worker checks it again against each pair's instrument,
quote and the venue's balance (jobs/bots/validate.py). Reads come from the state view only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.bots.inputs import merged, parse_input
from jobs.commands import (
    CloneBot,
    CreateDcaBot,
    DeleteBot,
    DisableBot,
    EnableBot,
    PlainText,
    UpdateBotConfig,
    new_command_id,
)
from jobs.domain.dca.config import BotConfigError
from mcp_bridge.context import READ_ONLY, Bridge, CommandOutcome, Symbol, writes
from mcp_bridge.param_schema import CompactSchema
from storage.state.bots import BotReader, BotView, secret_once

BotId = Annotated[str, Field(min_length=5, max_length=40, pattern=r"^bot_[A-Za-z0-9]+$",
                             description="from list_bots")]
Config = Annotated[dict[str, Any], Field(
    description="BotConfig fields; get_strategy_list(strategy='config') lists them")]
Reason = Annotated[PlainText | None, Field(max_length=200, description="why, shown on the bot"),
                   CompactSchema()]
SIGNING = ("POST JSON {\"timestamp\": ISO-8601 or Unix s, \"nonce\": unique, \"signal\": name (custom), "
           "\"pair\"} with header X-Tradingd-Signature: sha256=<HMAC-SHA256 of the body>, or put the secret "
           "in a \"secret\" field (TradingView); shown once: update_bot_config(rotate_webhook_secret=true) "
           "makes a new one")


class Webhook(BaseModel):
    path: str  # on the daemon's HTTP server (TRADINGD_DAEMON_HTTP_PORT)
    secret: str
    how: str = SIGNING


class BotResult(BaseModel):
    command: CommandOutcome
    bot: BotView | None
    warnings: list[str] = Field(default_factory=list)
    webhook: Webhook | None = None  # only when a secret was just made: it is not shown again


class BotSummary(BaseModel):
    bot_id: str
    name: str
    status: str
    strategy: str
    pairs: list[str]
    required_capital: str | None
    currency: str | None
    max_deviation_percent: str | None
    deals_started: int
    open_deals: int


class BotsResult(BaseModel):
    bots: list[BotSummary]
    count: int


def _refuse_bad(tool: str, data: dict[str, Any]) -> None:
    """Every problem of the configuration at once, each at its field (the worker checks the rest)."""
    try:
        parse_input(data)
    except BotConfigError as e:
        raise ToolError(f"{tool} refused, {len(e.problems)} problem(s): " + "; ".join(e.problems)) from None


def summary(view: BotView) -> BotSummary:
    ladder = view.ladder
    return BotSummary(bot_id=view.bot_id, name=view.name, status=view.status, strategy=view.strategy,
                      pairs=view.pairs, required_capital=ladder.get("required_capital"),
                      currency=ladder.get("currency"),
                      max_deviation_percent=ladder.get("max_deviation_percent"),
                      deals_started=view.deals_started, open_deals=view.open_deals)


def register(mcp: FastMCP, bridge: Bridge) -> None:
    def bots() -> BotReader:
        return BotReader(bridge.redis)

    async def current(bot_id: str) -> BotView:
        view = await bots().bot(bot_id)
        if view is None:
            raise ToolError(f"no bot {bot_id!r}; list_bots shows the ids")
        return view

    async def run(cmd: Any) -> BotResult:
        result = await bridge.run(cmd)
        details = result.details or {}
        bot_id = details.get("bot_id") or getattr(cmd, "bot_id", None)
        view = await bots().bot(bot_id) if bot_id else None
        secret = await bridge.redis.getdel(secret_once(cmd.command_id))
        webhook = Webhook(path=view.webhook_path, secret=secret.decode()) if secret and view and \
            view.webhook_path else None
        return BotResult(command=result, bot=view, warnings=[str(w) for w in details.get("warnings") or []],
                         webhook=webhook)

    @mcp.tool(title="Create a DCA bot", annotations=writes(destructive=False, idempotent=False))
    async def create_dca_bot(config: Config) -> BotResult:
        """Create a DCA bot (disabled until enable_bot), e.g. config {"name": "btc dip",
        "pairs": ["BTC/USDT"], "base_order": {"volume": 20}, "safety_orders": {"volume": 40,
        "step_percent": 1.5, "max_count": 6, "volume_scale": 1.3, "step_scale": 1.2},
        "take_profit": {"percent": 2, "trailing_enabled": true, "trailing_deviation": 0.4},
        "start_conditions": [{"kind": "rsi", "timeframe": "15m", "below": 30}]}. The result has the bot's
        required capital, maximum price deviation covered and ladder levels; a bad or unfundable
        configuration is refused with every problem at its field. A tradingview or custom_signal condition
        gets a webhook secret, shown once."""
        _refuse_bad("create_dca_bot", config)
        return await run(CreateDcaBot(command_id=new_command_id("bot"), config=config))

    @mcp.tool(title="Change a DCA bot's configuration",
              annotations=writes(destructive=False, idempotent=False))
    async def update_bot_config(
        bot_id: BotId,
        changes: Annotated[dict[str, Any], Field(
            description="config fields to change; objects merge field by field, null resets a field")] = {},  # noqa: B006
        rotate_webhook_secret: Annotated[bool, Field(description="make a new webhook secret")] = False,
    ) -> BotResult:
        """Change a bot's configuration: only the fields given change, and the result is checked as on
        create (open deals keep the terms they started with)."""
        if not changes and not rotate_webhook_secret:
            raise ToolError("give changes (config fields) or rotate_webhook_secret=true")
        _refuse_bad("update_bot_config", merged((await current(bot_id)).config, changes))
        return await run(UpdateBotConfig(command_id=new_command_id("bot"), bot_id=bot_id, changes=changes,
                                         rotate_webhook_secret=rotate_webhook_secret))

    @mcp.tool(title="Show a DCA bot", annotations=READ_ONLY)
    async def get_bot_details(bot_id: BotId) -> BotView:
        """A bot's configuration, status, ladder (required capital, max deviation covered, levels as last
        checked), deals started and open deals."""
        return await current(bot_id)

    @mcp.tool(title="List DCA bots", annotations=READ_ONLY)
    async def list_bots() -> BotsResult:
        """Every bot not deleted: status, pairs, required capital, max deviation covered and deal counts."""
        views = await bots().bots()
        return BotsResult(bots=[summary(v) for v in views], count=len(views))

    @mcp.tool(title="Clone a DCA bot", annotations=writes(destructive=False, idempotent=False))
    async def clone_bot(
        bot_id: BotId,
        name: Annotated[PlainText, Field(min_length=1, max_length=100, description="the new bot's name")],
        pairs: Annotated[list[Symbol] | None, Field(max_length=200,
                                                    description="other pairs, e.g. ['ETH/USDT']"),
                         CompactSchema()] = None,
    ) -> BotResult:
        """Copy a bot's configuration into a new, disabled bot with a new name (and other pairs if
        given), checked as on create."""
        source = await current(bot_id)
        _refuse_bad("clone_bot", {**source.config, "name": name, **({"pairs": pairs} if pairs else {})})
        return await run(CloneBot(command_id=new_command_id("bot"), bot_id=bot_id, name=name, pairs=pairs))

    @mcp.tool(title="Delete a DCA bot", annotations=writes(destructive=True, idempotent=True))
    async def delete_bot(
        bot_id: BotId,
        panic_sell: Annotated[bool, Field(description="sell its open deals at market, then delete")] = False,
    ) -> BotResult:
        """Delete a bot for good; refused unless the operator enabled destructive tools, and while it has
        open deals unless panic_sell=true. disable_bot is the safe way to stop one."""
        if not bridge.settings.destructive_tools:
            raise ToolError("deleting bots is disabled (TRADINGD_DESTRUCTIVE_TOOLS=false); stop it with "
                            "disable_bot or ask the operator to enable destructive tools")
        return await run(DeleteBot(command_id=new_command_id("bot"), bot_id=bot_id, panic_sell=panic_sell))

    @mcp.tool(title="Enable a DCA bot", annotations=writes(destructive=False, idempotent=True))
    async def enable_bot(bot_id: BotId) -> BotResult:
        """Start a bot: its configuration is checked again with today's prices and balance, then it may
        open deals when its start conditions hold."""
        return await run(EnableBot(command_id=new_command_id("bot"), bot_id=bot_id))

    @mcp.tool(title="Disable a DCA bot", annotations=writes(destructive=False, idempotent=True))
    async def disable_bot(bot_id: BotId, reason: Reason = None) -> BotResult:
        """Stop a bot from opening deals; its open deals run on to their end."""
        return await run(DisableBot(command_id=new_command_id("bot"), bot_id=bot_id, reason=reason))
