"""`python -m bench tool_list`: what the tool list costs an assistant's context, per toolset.

The size is the tools/list JSON as the server sends it (each tool serialized compactly, the way
the MCP SDK writes it on the wire); tokens are approximated as characters / 4, the usual rule of
thumb for English and JSON (a real tokenizer differs by model). Budget (issue 12): the default
toolset <= 20,000 characters and no tool over 2,500.

Last line: `tool_list: default_chars=… default_tokens≈… all_chars=… all_tools=… largest=name:chars`.
"""

from __future__ import annotations

from fastmcp import Client

from mcp_bridge.server import build_server
from mcp_bridge.toolsets import TOOLSETS
from storage.settings import Settings

DEFAULT_BUDGET_CHARS = 20_000
TOOL_BUDGET_CHARS = 2_500


async def tool_sizes(settings: Settings) -> dict[str, int]:
    """Characters of each tool's entry in tools/list for a server built with `settings`."""
    server = build_server(settings, queue=object())  # type: ignore[arg-type]  # listing needs no queue
    async with Client(server) as client:
        tools = await client.list_tools()
    return {t.name: len(t.model_dump_json(by_alias=True, exclude_none=True)) for t in tools}


def list_chars(sizes: dict[str, int]) -> int:
    """The whole tools/list result: {"tools":[t1,t2,...]} around the tools."""
    return sum(sizes.values()) + max(len(sizes) - 1, 0) + len('{"tools":[]}')


def tokens(chars: int) -> int:
    return round(chars / 4)


async def main() -> None:
    base = Settings()
    rows: list[tuple[str, dict[str, int]]] = [("default", await tool_sizes(base))]
    for name in TOOLSETS:
        rows.append((name, await tool_sizes(base.model_copy(update={"toolsets": name}))))
    rows.append(("all", await tool_sizes(base.model_copy(update={"toolsets": "all"}))))
    rows.append(("all, read-only", await tool_sizes(base.model_copy(update={"toolsets": "all", "read_only": True}))))
    print(f"{'toolset':<16}{'tools':>6}{'chars':>9}{'≈tokens':>9}  largest")
    for name, sizes in rows:
        largest = max(sizes.items(), key=lambda kv: kv[1]) if sizes else ("-", 0)
        print(f"{name:<16}{len(sizes):>6}{list_chars(sizes):>9}{tokens(list_chars(sizes)):>9}  "
              f"{largest[0]} {largest[1]}")
    everything = dict(rows)["all"]
    print("\nper tool (all):")
    for tool, chars in sorted(everything.items(), key=lambda kv: -kv[1]):
        print(f"  {tool:<24}{chars:>6}")
    default = dict(rows)["default"]
    top = max(everything.items(), key=lambda kv: kv[1])
    print(f"tool_list: default_chars={list_chars(default)} default_tokens≈{tokens(list_chars(default))} "
          f"all_chars={list_chars(everything)} all_tools={len(everything)} largest={top[0]}:{top[1]}")
