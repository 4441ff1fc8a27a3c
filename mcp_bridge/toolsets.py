"""Toolsets: which of the bridge's tools a client sees.

Why: every tool's name, description and schemas sit in the assistant's context before the user
says a word, and models choose worse from long lists. So the tools are grouped in toolsets (as
the GitHub MCP server does), a deployment serves the toolsets it needs, and read-only mode serves
only the tools that change nothing.

One table below says which toolset each tool belongs to. `build_server` registers every tool,
then keeps the ones `select_tools` returns and removes the rest, so a tool left out is not merely
hidden: it cannot be called. A tool registered without a row here stops start-up (a new tool
must choose its toolset).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from storage.settings import SettingsError

# Every toolset, in the order the README and list_toolsets show them. Empty ones fill as their
# issues land (bots: DCA bots; options: 0DTE; risk: kill switch and limits).
TOOLSETS: dict[str, str] = {
    "market": "quotes, candles and what each venue trades",
    "orders": "preview, place, replace and cancel orders; order and fill history",
    "portfolio": "balances, positions, P&L and the audit log",
    "schedules": "recurring DCA buys",
    "bots": "DCA bots and their deals",
    "options": "option chains and 0DTE strategies",
    "risk": "trading state, limits and the kill switch",
    "system": "health and the status of a queued command",
}

TOOLSET_OF: dict[str, str] = {
    "get_quote": "market",
    "get_bars": "market",
    "get_market_pairs": "market",
    "preview_order": "orders",
    "place_order": "orders",
    "cancel_order": "orders",
    "get_order": "orders",
    "list_orders": "orders",
    "list_fills": "orders",
    "preview_replace": "orders",
    "replace_order": "orders",
    "get_account": "portfolio",
    "get_positions": "portfolio",
    "get_portfolio": "portfolio",
    "get_audit_log": "portfolio",
    "create_dca_schedule": "schedules",
    "update_dca_schedule": "schedules",
    "delete_dca_schedule": "schedules",
    "list_dca_schedules": "schedules",
    "create_dca_bot": "bots",
    "update_bot_config": "bots",
    "get_bot_details": "bots",
    "list_bots": "bots",
    "clone_bot": "bots",
    "delete_bot": "bots",
    "enable_bot": "bots",
    "disable_bot": "bots",
    # bot building's market side: here, not in 'market', whose default list is near its budget
    "get_strategy_list": "bots",
    "get_currency_rates": "bots",
    "get_pairs_blacklist": "bots",
    "update_pairs_blacklist": "bots",
    "backtest_bot": "bots",
    "compare_backtests": "bots",
    "get_bot_deals": "bots",
    "get_deal_details": "bots",
    "get_deals_stats": "bots",
    "get_bot_stats": "bots",
    "cancel_deal": "bots",
    "update_deal": "bots",
    "panic_sell_deal": "bots",
    "add_safety_order": "bots",
    "health": "system",
    "get_command_status": "system",
    "list_toolsets": "system",
    "enable_toolset": "system",
}

# What a client gets when nothing is configured: look, trade, report, diagnose. Schedules, bots
# and options are one setting away (TRADINGD_TOOLSETS=default,schedules or all).
DEFAULT_TOOLSETS: tuple[str, ...] = ("market", "orders", "portfolio", "system")
DISCOVERY_TOOLS = frozenset({"list_toolsets", "enable_toolset"})


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """What the operator asked for: toolset names (or 'default' / 'all'), single tools, read-only."""

    toolsets: tuple[str, ...] = ("default",)
    tools: tuple[str, ...] = ()
    read_only: bool = False
    dynamic: bool = False


def parse_names(text: str | Iterable[str]) -> tuple[str, ...]:
    """'market, orders' (an environment variable or a CLI flag) or a list, as clean names."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(n.strip().lower() for n in items if n.strip()))


def expand_toolsets(names: Iterable[str]) -> tuple[str, ...]:
    """Toolset names with 'default' and 'all' expanded; an unknown name stops start-up."""
    chosen: list[str] = []
    for name in names:
        if name == "all":
            chosen.extend(TOOLSETS)
        elif name == "default":
            chosen.extend(DEFAULT_TOOLSETS)
        elif name in TOOLSETS:
            chosen.append(name)
        else:
            raise SettingsError(f"unknown toolset {name!r} in TRADINGD_TOOLSETS / --toolsets; valid: "
                                f"{', '.join(TOOLSETS)}, default ({', '.join(DEFAULT_TOOLSETS)}), all")
    return tuple(dict.fromkeys(chosen))


def check_registered(registered: Iterable[str]) -> None:
    """Every registered tool must belong to a toolset (a developer's mistake, caught at start-up)."""
    orphans = sorted(set(registered) - TOOLSET_OF.keys())
    if orphans:
        raise SettingsError(f"tools without a toolset (add them to mcp_bridge/toolsets.py): {orphans}")


def select_tools(registered: Mapping[str, bool], choice: ToolChoice) -> set[str]:
    """The tools to serve, from {tool name: is it read-only} and the operator's choice.

    Read-only mode wins over everything else: a writing tool is never served in it, even when
    named in TRADINGD_TOOLS. The discovery tools are served only in dynamic mode.
    """
    check_registered(registered)
    nameable = registered.keys() if choice.dynamic else registered.keys() - DISCOVERY_TOOLS
    unknown = [t for t in choice.tools if t not in nameable]
    if unknown:
        raise SettingsError(f"unknown tool(s) {', '.join(map(repr, unknown))} in TRADINGD_TOOLS / --tools; "
                            f"valid: {', '.join(sorted(nameable))}")
    sets = set(expand_toolsets(choice.toolsets))
    wanted = {t for t in registered if TOOLSET_OF[t] in sets} | set(choice.tools)
    if choice.dynamic:
        wanted |= DISCOVERY_TOOLS & registered.keys()
    else:
        wanted -= DISCOVERY_TOOLS
    if choice.read_only:
        wanted = {t for t in wanted if registered[t]}
    return wanted


def tools_of(toolset: str, available: Iterable[str]) -> list[str]:
    """The tools of one toolset among those available, in the table's order."""
    have = set(available)
    return [t for t, s in TOOLSET_OF.items() if s == toolset and t in have]
