"""MCP tools, one module per area; each exposes `register(mcp, bridge)`."""
