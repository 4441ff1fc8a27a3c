"""Toolsets, read-only mode, dynamic discovery and the tool list's budget (issue 12).

Listing tools needs no worker: the servers here are built without a queue, and a call to a tool
that was removed is refused by the server before any tool code runs.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.messages import MessageHandler
from fastmcp.exceptions import ToolError

from bench.tool_list import DEFAULT_BUDGET_CHARS, TOOL_BUDGET_CHARS, list_chars, tool_sizes
from mcp_bridge.server import build_server
from mcp_bridge.toolsets import DEFAULT_TOOLSETS, TOOLSET_OF, TOOLSETS, ToolChoice, expand_toolsets, select_tools
from storage.settings import Settings, SettingsError


def _server(**overrides: Any) -> Any:
    return build_server(Settings().model_copy(update=overrides), queue=object())  # type: ignore[arg-type]


async def _listed(server: Any) -> dict[str, Any]:
    async with Client(server) as c:
        return {t.name: t for t in await c.list_tools()}


# --- the selection, as pure logic

REGISTERED = {"get_quote": True, "place_order": False, "list_orders": True, "create_dca_schedule": False,
              "list_dca_schedules": True, "health": True, "list_toolsets": True, "enable_toolset": True}


def test_default_and_all_expand_to_toolset_names_and_an_unknown_name_lists_the_valid_ones():
    assert expand_toolsets(["default"]) == DEFAULT_TOOLSETS
    assert expand_toolsets(["all"]) == tuple(TOOLSETS)
    assert expand_toolsets(["orders", "orders", "market"]) == ("orders", "market")
    with pytest.raises(SettingsError) as e:
        expand_toolsets(["orders", "trading"])
    assert "'trading'" in str(e.value) and "market, orders, portfolio, schedules" in str(e.value)


def test_single_tools_add_to_toolsets_and_unknown_tools_are_refused():
    chosen = select_tools(REGISTERED, ToolChoice(toolsets=("market",), tools=("create_dca_schedule",)))
    assert chosen == {"get_quote", "create_dca_schedule"}
    with pytest.raises(SettingsError, match="unknown tool.*'place_ordr'.*valid: .*place_order"):
        select_tools(REGISTERED, ToolChoice(tools=("place_ordr",)))


def test_read_only_wins_over_toolsets_and_single_tools():
    chosen = select_tools(REGISTERED, ToolChoice(toolsets=("all",), tools=("place_order",), read_only=True))
    assert chosen == {"get_quote", "list_orders", "list_dca_schedules", "health"}


def test_discovery_tools_are_served_only_in_dynamic_mode():
    assert "list_toolsets" not in select_tools(REGISTERED, ToolChoice(toolsets=("system",)))
    assert {"list_toolsets", "enable_toolset"} <= select_tools(REGISTERED, ToolChoice(toolsets=(), dynamic=True))


def test_a_tool_without_a_toolset_stops_start_up():
    with pytest.raises(SettingsError, match="without a toolset.*'new_tool'"):
        select_tools({**REGISTERED, "new_tool": True}, ToolChoice())


# --- the server

async def test_every_tool_belongs_to_a_toolset_and_the_default_serves_exactly_its_toolsets():
    everything = await _listed(_server(toolsets="all"))
    assert everything and set(everything) <= TOOLSET_OF.keys()
    default = await _listed(_server())
    assert set(default) == {t for t in everything if TOOLSET_OF[t] in DEFAULT_TOOLSETS}
    only = await _listed(_server(toolsets="schedules", tools="get_quote"))
    assert set(only) == {t for t in everything if TOOLSET_OF[t] == "schedules"} | {"get_quote"}


async def test_read_only_mode_serves_no_writing_tool_and_none_can_be_called():
    everything = await _listed(_server(toolsets="all"))
    writing = {n for n, t in everything.items() if not t.annotations.read_only_hint}
    assert {"place_order", "cancel_order", "create_dca_schedule"} <= writing
    server = _server(toolsets="all", tools="place_order", read_only=True)
    served = await _listed(server)
    assert served and all(t.annotations.read_only_hint for t in served.values())
    assert set(served) == set(everything) - writing
    async with Client(server) as c:
        for name in sorted(writing):
            with pytest.raises(ToolError, match="Unknown tool"):
                await c.call_tool(name, {})


async def test_the_default_list_and_every_tool_stay_within_budget():
    default = await tool_sizes(Settings())
    everything = await tool_sizes(Settings(toolsets="all"))
    largest = ", ".join(f"{n} {c}" for n, c in sorted(everything.items(), key=lambda kv: -kv[1])[:5])
    assert list_chars(default) <= DEFAULT_BUDGET_CHARS, \
        f"default tools/list is {list_chars(default)} chars (budget {DEFAULT_BUDGET_CHARS}); largest: {largest}"
    over = {n: c for n, c in everything.items() if c > TOOL_BUDGET_CHARS}
    assert not over, f"tools over {TOOL_BUDGET_CHARS} chars: {over}; largest: {largest}"


async def test_output_schemas_are_lean_but_still_describe_the_fields():
    tools = await _listed(_server(toolsets="all"))
    schema = tools["preview_order"].output_schema
    assert "$defs" not in schema and "estimated_price" in schema["properties"]
    assert schema["properties"]["order"] == {"type": "object"}
    assert all("description" not in p for t in tools.values() for p in (t.output_schema or {}).get("properties", {}).values())


class _ListChanges(MessageHandler):
    def __init__(self) -> None:
        self.count = 0

    async def on_tool_list_changed(self, message: Any) -> None:
        self.count += 1


async def test_dynamic_toolsets_start_small_and_enable_toolset_loads_one_and_says_the_list_changed():
    server = _server(dynamic_toolsets=True, toolsets="market")
    changes = _ListChanges()
    async with Client(server, message_handler=changes) as c:
        first = {t.name for t in await c.list_tools()}
        assert first == {"get_quote", "get_bars", "get_market_pairs", "list_toolsets", "enable_toolset"}
        with pytest.raises(ToolError, match="Unknown tool"):
            await c.call_tool("list_dca_schedules", {})
        listing = (await c.call_tool("list_toolsets", {})).structured_content["toolsets"]
        assert {s["name"]: s["enabled"] for s in listing}["schedules"] is False
        result = await c.call_tool("enable_toolset", {"name": "schedules"})
        assert {s["name"]: s["enabled"] for s in result.structured_content["toolsets"]}["schedules"] is True
        after = {t.name for t in await c.list_tools()}
        assert after == first | {t for t, s in TOOLSET_OF.items() if s == "schedules"}
        assert changes.count >= 1
        with pytest.raises(ToolError, match="no tools on this server"):
            await c.call_tool("enable_toolset", {"name": "options"})


async def test_dynamic_mode_in_read_only_never_offers_a_writing_tool():
    server = _server(dynamic_toolsets=True, read_only=True, toolsets="market")
    async with Client(server) as c:
        await c.call_tool("enable_toolset", {"name": "orders"})
        tools = await c.list_tools()
    assert "list_orders" in {t.name for t in tools}
    assert all(t.annotations.read_only_hint for t in tools)


def test_the_cli_refuses_an_unknown_toolset_and_names_the_valid_ones():
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "mcp", "--toolsets", "market,tradin"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "unknown toolset 'tradin'" in out and "valid: market, orders" in out


async def test_the_readme_tools_table_matches_the_server():
    """The README's table (tool, toolset, read-only, destructive, idempotent) is what the server says."""
    from pathlib import Path
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = {m[0]: m[1:] for m in re.findall(
        r"^\| `(\w+)` \| (\w+) \| .*? \| (yes|no) \| (yes|no) \| (yes|no) \|$", readme, re.M)}
    served = await _listed(_server(toolsets="all", dynamic_toolsets=True, destructive_tools=True))
    flag = {True: "yes", False: "no"}
    expected = {n: (TOOLSET_OF[n], flag[bool(t.annotations.read_only_hint)],
                    flag[bool(t.annotations.destructive_hint)], flag[bool(t.annotations.idempotent_hint)])
                for n, t in served.items()}
    assert rows == expected


def _sentences(text: str) -> list[str]:
    import re

    text = re.sub(r"\b(e\.g|i\.e|etc|vs)\.", r"\1", text)  # abbreviations end no sentence
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


async def test_descriptions_say_what_and_when_in_at_most_three_sentences_and_parameters_briefly():
    tools = await _listed(_server(toolsets="all", dynamic_toolsets=True))
    long = {n: len(_sentences(t.description or "")) for n, t in tools.items() if len(_sentences(t.description or "")) > 3}
    assert not long, f"descriptions over three sentences: {long}"
    assert all(t.description for t in tools.values())
    wordy = {f"{n}.{p}": len(s.get("description", "")) for n, t in tools.items()
             for p, s in t.input_schema.get("properties", {}).items() if len(s.get("description", "")) > 160}
    assert not wordy, f"parameter descriptions over 160 characters: {wordy}"


def test_input_schemas_lose_null_defaults_only():
    from mcp_bridge.lean_schema import lean_input_schema

    schema = {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "string"}, "b": {"type": ["string", "null"], "default": None},
        "c": {"type": "string", "default": "gtc"}}}
    lean = lean_input_schema(schema)
    assert lean["properties"] == {"a": {"type": "string"}, "b": {"type": ["string", "null"]},
                                  "c": {"type": "string", "default": "gtc"}}
    assert lean["required"] == ["a"] and schema["properties"]["b"]["default"] is None  # the original kept
