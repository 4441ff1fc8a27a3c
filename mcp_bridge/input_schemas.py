"""Each tool's input schema by name, for the MCP SDK's Mcp-Param header check on HTTP tool calls.

Why: over streamable HTTP the MCP SDK checks every tools/call's `Mcp-Param-*` headers against
the called tool's input schema before dispatching it. A low-level server without a
`get_tool_input_schema` lookup (fastmcp 4.1.2 sets none) makes the SDK find that schema by
running a whole tools/list through the server for each call: the middleware, the transforms and
every tool's schema serialized, to read one entry. Under `python -m bench mcp_load` that was
about a quarter of the bridge's CPU. The SDK's own MCPServer answers from its tool table; this
answers from fastmcp's, the same schemas tools/list advertises (tests/mcp_bridge/
test_input_schemas.py compares them). Like the SDK's lookup it also finds a tool hidden from a
session (dynamic toolsets); dispatch still refuses to call that one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastmcp import FastMCP
from fastmcp.tools.base import Tool


def serve_input_schemas(mcp: FastMCP) -> None:
    """Give `mcp`'s low-level server a by-name lookup of the registered tools' input schemas.

    Built once from the tools registered now (call it after build_server has chosen them); a
    name not among them gets None, which makes the SDK skip the header check, as it does for a
    tool its listing does not advertise. Reads fastmcp's local provider's component table, as
    mcp_bridge/server.py's `_registered_tools` does (fastmcp is pinned at 4.1.2).
    """
    schemas: dict[str, Mapping[str, Any]] = {
        c.name: c.parameters for c in mcp.local_provider._components.values() if isinstance(c, Tool)}
    mcp._mcp_server.get_tool_input_schema = schemas.get
