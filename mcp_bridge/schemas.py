"""Tool registration with compact output schemas.

Why: an MCP client checks every structured result against the tool's output schema (the
fastmcp client also derives a type from it, per call), so the schema's shape is paid on every
call. Pydantic writes an optional field as `anyOf: [{type: X}, {type: null}]`, which a
validator evaluates as two sub-schemas; the equivalent `type: [X, "null"]` is one check. On
place_order's result that is ~10 % of an MCP call through the fastmcp client. Assistants read
the shorter form as easily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastmcp import FastMCP
from fastmcp.tools import FunctionTool

F = TypeVar("F", bound=Callable[..., Any])
_NULL = {"type": "null"}
_SIMPLE_KEYS = frozenset({"type", "enum", "format", "pattern", "additionalProperties"})


def compact_schema(schema: Any) -> Any:
    """`schema` with every `anyOf: [{type: X, ...}, {type: null}]` of a simple X written as
    `type: [X, "null"]` (an enum also admits null); anything else is left as it is."""
    if isinstance(schema, list):
        return [compact_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: compact_schema(v) for k, v in schema.items()}
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and _NULL in options:
        (other,) = [o for o in options if o != _NULL]
        if isinstance(other, dict) and isinstance(other.get("type"), str) and set(other) <= _SIMPLE_KEYS:
            del out["anyOf"]
            out.update(other)
            out["type"] = [other["type"], "null"]
            if "enum" in other:
                out["enum"] = [*other["enum"], None]
    return out


def tool(mcp: FastMCP, *, annotations: dict[str, bool]) -> Callable[[F], F]:
    """`@mcp.tool(annotations=...)`, with the output schema in compact form."""
    def register(fn: F) -> F:
        made = FunctionTool.from_function(fn, annotations=annotations)  # type: ignore[arg-type]
        mcp.add_tool(made.model_copy(update={"output_schema": compact_schema(made.output_schema)}))
        return fn
    return register
