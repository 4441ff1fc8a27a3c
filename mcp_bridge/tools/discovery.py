"""Dynamic toolset discovery (opt-in, `--dynamic-toolsets`): start with a short tool list and let
the assistant load a toolset when the conversation needs it.

Why it works with fastmcp 4.1.2: a tool left out of the start-up selection is registered but
disabled by a server-wide visibility rule; `enable_toolset` adds a rule for the caller's own
scope (`Context.enable_components`: the stdio process, or the authenticated HTTP client), which
overrides the server-wide one and sends `notifications/tools/list_changed` so the client lists
the tools again. Read-only mode still holds: its writing tools were never registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_bridge.context import READ_ONLY
from mcp_bridge.toolsets import TOOLSETS, tools_of

if TYPE_CHECKING:  # a Literal built from a dict is not a type to mypy; to pydantic it is the names
    ToolsetName = str
else:
    ToolsetName = Literal[tuple(TOOLSETS)]


class ToolsetInfo(BaseModel):
    name: str
    description: str
    enabled: bool
    tools: list[str]


class ToolsetList(BaseModel):
    toolsets: list[ToolsetInfo]


def register(mcp: FastMCP, served: set[str]) -> None:
    """`served`: every tool this server can show (after toolsets and read-only mode)."""

    async def listing(ctx: Context) -> ToolsetList:
        visible = {t.name for t in await ctx.fastmcp.list_tools()}
        out = []
        for name, description in TOOLSETS.items():
            tools = tools_of(name, served)
            if tools:
                out.append(ToolsetInfo(name=name, description=description, tools=tools,
                                       enabled=all(t in visible for t in tools)))
        return ToolsetList(toolsets=out)

    @mcp.tool(title="List toolsets", annotations=READ_ONLY)
    async def list_toolsets(ctx: Context) -> ToolsetList:
        """The toolsets this server offers, their tools, and which are enabled in this session.

        Call it when the user asks for something no listed tool does, then enable_toolset.
        """
        return await listing(ctx)

    @mcp.tool(title="Enable a toolset", annotations=READ_ONLY)
    async def enable_toolset(
            name: Annotated[ToolsetName, Field(description="a toolset from list_toolsets")],
            ctx: Context) -> ToolsetList:
        """Load a toolset's tools into this session; the client is told the tool list changed.

        Changes nothing in the account: it only makes more tools available.
        """
        tools = tools_of(name, served)
        if not tools:
            raise ToolError(f"toolset {name!r} has no tools on this server (not built yet, or only writing "
                            f"tools in read-only mode); list_toolsets shows what can be enabled")
        await ctx.enable_components(names=set(tools), components={"tool"})
        return await listing(ctx)
