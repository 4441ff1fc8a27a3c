"""What a DCA bot is built from, beside the bot itself: its start strategies (with each one's
parameters), currency rates from the live quotes, and the pairs blacklist.

Tool names from seed 001. In the 'bots' toolset rather than 'market': the default tool list's
budget is nearly spent (tests/mcp_bridge/test_toolsets.py), and these serve bot building.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.commands import PlainText, UpdatePairsBlacklist, new_command_id
from jobs.domain.dca.condition_specs import StartCondition
from jobs.domain.dca.config import BotConfig
from jobs.domain.dca.entries import BaseOrder, SafetyOrders
from jobs.domain.dca.exits import StopLoss, TakeProfit
from jobs.domain.instruments import all_instruments
from mcp_bridge.context import READ_ONLY, Bridge, CommandOutcome, Symbol, writes
from mcp_bridge.param_schema import CompactSchema
from storage.state.bots import BlacklistEntryView, BotReader
from storage.values import Amount

CONDITIONS: dict[str, type[BaseModel]] = {
    m.model_fields["kind"].default: m for m in typing.get_args(typing.get_args(StartCondition)[0])}
CONFIG_PARTS: dict[str, type[BaseModel]] = {"config": BotConfig, "base_order": BaseOrder,
                                             "safety_orders": SafetyOrders, "take_profit": TakeProfit,
                                             "stop_loss": StopLoss}
Strategy = Literal["asap", "manual", "rsi", "bollinger", "macd", "ma_cross", "qfl", "tradingview",
                   "custom_signal", "config"]
RATE_DIGITS = Decimal("1e-12")


class Parameter(BaseModel):
    name: str
    type: str
    default: Any = None
    required: bool


class StrategyHelp(BaseModel):
    kind: str
    meaning: str
    parameters: list[Parameter]


class StrategiesResult(BaseModel):
    strategies: list[StrategyHelp]
    how: str = ("a bot's config.start_conditions lists these as {\"kind\": ..., parameters}; all must hold "
                "for a deal to start; asap and manual stand alone")


class Rate(BaseModel):
    currency: str
    rate: Amount  # one unit of `currency` in the quote currency (bid/ask mid)
    via: list[str]  # the pairs the rate comes from (two: through a third currency)
    quoted_at: datetime  # the older quote's time
    stale: bool


class RatesResult(BaseModel):
    quote: str
    rates: list[Rate]
    unpriced: list[str]  # asked for, but no quote links them to `quote`


class BlacklistResult(BaseModel):
    command: CommandOutcome | None = None
    pairs: list[BlacklistEntryView]
    count: int


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation)).replace("NoneType", "null")
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (tuple, list):
        return "list of " + _type_name(typing.get_args(annotation)[0])
    names = {Decimal: "number", int: "integer", str: "string", bool: "boolean", type(None): "null"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _help(kind: str, model: type[BaseModel], *, detail: bool) -> StrategyHelp:
    doc = " ".join((model.__doc__ or "").split())
    meaning = doc if detail else doc.split(". ")[0].rstrip(".") + "."
    params = [Parameter(name=name, type=_type_name(f.annotation), required=f.is_required(),
                        default=None if f.is_required() else f.get_default(call_default_factory=True))
              for name, f in model.model_fields.items() if name != "kind"]
    return StrategyHelp(kind=kind, meaning=meaning, parameters=params)


def currency_rates(quotes: dict[str, Any], quote: str, wanted: list[str] | None, now: datetime,
                   stale_after_s: float) -> RatesResult:
    """Rates to `quote` from each pair's mid: directly (X/quote, or quote/X inverted) or through one
    third currency (X/USDT and quote/USDT)."""
    direct: dict[tuple[str, str], tuple[Decimal, str, Any]] = {}
    for symbol, q in quotes.items():
        if "/" not in symbol or q.bid <= 0 or q.ask <= 0:
            continue
        base, counter = symbol.split("/")
        mid = (q.bid + q.ask) / 2
        direct[(base, counter)] = (mid, symbol, q)
        direct[(counter, base)] = (1 / mid, symbol, q)
    currencies = wanted or sorted({c for pair in direct for c in pair} - {quote})
    rates, unpriced = [], []
    for c in currencies:
        path = _path(direct, c, quote)
        if path is None:
            unpriced.append(c)
            continue
        rate = Decimal(1)
        for r, _, _ in path:
            rate *= r
        used = [q for _, _, q in path]
        rates.append(Rate(currency=c, rate=rate.quantize(RATE_DIGITS).normalize(),
                          via=[s for _, s, _ in path], quoted_at=min(q.ts for q in used),
                          stale=any(q.too_old(now, stale_after_s) for q in used)))
    return RatesResult(quote=quote, rates=rates, unpriced=unpriced)


def _path(direct: dict[tuple[str, str], Any], c: str, quote: str) -> list[Any] | None:
    if c == quote:
        return []
    if (c, quote) in direct:
        return [direct[(c, quote)]]
    for (a, hub), first in sorted(direct.items(), key=lambda kv: kv[0][1] != "USDT"):
        if a == c and (hub, quote) in direct:
            return [first, direct[(hub, quote)]]
    return None


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="DCA start strategies and their parameters", annotations=READ_ONLY)
    async def get_strategy_list(
        strategy: Annotated[Strategy | None, Field(
            description="one kind's full help; 'config' lists the bot config's fields"),
            CompactSchema()] = None,
    ) -> StrategiesResult:
        """The start conditions a DCA bot can wait for (RSI, Bollinger, MACD, MA cross, QFL, TradingView,
        custom signal, asap, manual), each with its parameters and defaults; `strategy` gives one's
        detail, and 'config' the fields of create_dca_bot's config object."""
        if strategy == "config":
            parts = [_help(name, m, detail=True) for name, m in CONFIG_PARTS.items()]
            return StrategiesResult(strategies=parts, how=(
                "create_dca_bot's config: the 'config' fields, with base_order, safety_orders, take_profit "
                "and stop_loss as objects of their own"))
        if strategy is not None:
            return StrategiesResult(strategies=[_help(strategy, CONDITIONS[strategy], detail=True)])
        return StrategiesResult(strategies=[_help(k, m, detail=False) for k, m in CONDITIONS.items()])

    @mcp.tool(title="Currency rates", annotations=READ_ONLY)
    async def get_currency_rates(
        currencies: Annotated[list[Annotated[str, Field(max_length=20, pattern=r"^[A-Za-z0-9]+$")]] | None,
                              Field(max_length=50,
                                    description="e.g. ['BTC', 'ETH']; default: every one quoted"),
                              CompactSchema()] = None,
        quote: Annotated[str, Field(max_length=20, pattern=r"^[A-Za-z0-9]+$",
                                    description="the currency rates are in")] = "USDT",
    ) -> RatesResult:
        """Rates between currencies from the live quotes (bid/ask mid), e.g. BTC in USDT, with each
        quote's time; through a third currency when no pair links two directly."""
        symbols = [i.symbol for i in all_instruments() if "/" in i.symbol]
        quotes = await bridge.reader.quotes(symbols)
        now = datetime.now(quotes[next(iter(quotes))].ts.tzinfo) if quotes else datetime.now().astimezone()
        wanted = [c.upper() for c in currencies] if currencies else None
        return currency_rates(quotes, quote.upper(), wanted, now, bridge.settings.quote_stale_after_s)

    @mcp.tool(title="Pairs blacklist", annotations=READ_ONLY)
    async def get_pairs_blacklist() -> BlacklistResult:
        """The pairs no bot may start a deal on, per venue, with why."""
        entries = await BotReader(bridge.redis).blacklist()
        return BlacklistResult(pairs=entries, count=len(entries))

    @mcp.tool(title="Change the pairs blacklist", annotations=writes(destructive=False, idempotent=True))
    async def update_pairs_blacklist(
        action: Literal["add", "remove"],
        pairs: Annotated[list[Symbol], Field(min_length=1, max_length=200)],
        reason: Annotated[PlainText | None, Field(max_length=200, description="why (needed to add)"),
                          CompactSchema()] = None,
        venue: Annotated[PlainText | None, Field(max_length=32, description="default: each pair's venue"),
                         CompactSchema()] = None,
    ) -> BlacklistResult:
        """Add pairs to the blacklist (with a reason) or remove them; bots refuse blacklisted pairs at
        create, update, clone and enable."""
        if action == "add" and not (reason and reason.strip()):
            raise ToolError("reason is needed to add pairs to the blacklist: say why, e.g. "
                            "'delisting announced'")
        result = await bridge.run(UpdatePairsBlacklist(command_id=new_command_id("blacklist"), action=action,
                                                       pairs=pairs, reason=reason, venue=venue))
        entries = await BotReader(bridge.redis).blacklist()
        return BlacklistResult(command=result, pairs=entries, count=len(entries))
