"""Schemas as a client sees them in tools/list: a result's top-level shape, nothing more, and
parameters without their null defaults.

Why: pydantic writes a full JSON Schema for every result model, with each nested model's
definition, every field's description and default, and `anyOf [X, null]` for each optional
field. In tools/list that was half of every tool's size (place_order's output schema alone was
3,000 characters), and an assistant reads the result itself, not its schema, to learn what came
back. The result still carries structured content; its schema now names the top-level fields
with their types (enums kept: they say which statuses exist), calls anything nested an object or
an array of objects, and leaves out `required` (a reader of a result sees which fields came).
The lean schema only loosens the full one, so every result still conforms to it.

The transform rewrites what tools/list shows and nothing else: calling a tool still uses the
tool as registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastmcp.server.transforms import Transform
from fastmcp.tools.base import Tool

_KEPT_KEYS = ("x-fastmcp-wrap-result",)  # fastmcp's client unwraps {"result": ...} when it sees this


def lean_output_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The top-level properties of `schema` with their types; nested objects become 'object'."""
    defs = schema.get("$defs", {})
    root = _resolve(schema, defs)
    lean: dict[str, Any] = {"type": "object"}
    props = root.get("properties")
    if props:
        lean["properties"] = {name: _brief(sub, defs, depth=1) for name, sub in props.items()}
    for key in _KEPT_KEYS:
        if key in schema:
            lean[key] = schema[key]
    return lean


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return defs.get(ref.removeprefix("#/$defs/"), {})
    return schema


def _types(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """The JSON types a (resolved) schema allows, as a list."""
    schema = _resolve(schema, defs)
    if "anyOf" in schema or "oneOf" in schema:
        out: list[str] = []
        for sub in schema.get("anyOf", schema.get("oneOf", [])):
            out += [t for t in _types(sub, defs) if t not in out]
        return out
    t = schema.get("type")
    if isinstance(t, list):
        return list(t)
    if isinstance(t, str):
        return [t]
    if "properties" in schema:
        return ["object"]
    if "enum" in schema or "const" in schema:
        return ["string"]
    return []


def _enum(schema: dict[str, Any], defs: dict[str, Any]) -> list[Any] | None:
    schema = _resolve(schema, defs)
    if "enum" in schema:
        return list(schema["enum"])
    for sub in schema.get("anyOf", []):
        found = _enum(sub, defs)
        if found is not None:
            return found + ([None] if {"type": "null"} in schema["anyOf"] else [])
    return None


def _brief(schema: dict[str, Any], defs: dict[str, Any], depth: int) -> dict[str, Any]:
    """One property, briefly: its type(s), its enum, and for arrays the type of the items."""
    types = _types(schema, defs)
    brief: dict[str, Any] = {}
    if types:
        brief["type"] = types[0] if len(types) == 1 else types
    enum = _enum(schema, defs)
    if enum is not None:
        brief["enum"] = enum
    if "array" in types:
        items = _array_items(schema, defs)
        item_types = _types(items, defs) if items else []
        if item_types:
            brief["items"] = {"type": item_types[0] if len(item_types) == 1 else item_types}
    return brief


def _array_items(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    schema = _resolve(schema, defs)
    if "items" in schema:
        return schema["items"]
    for sub in schema.get("anyOf", []):
        found = _array_items(sub, defs)
        if found is not None:
            return found
    return None


def lean_input_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The input schema without `"default": null` on optional parameters: `required` already says
    which parameters may be left out, and null is what leaving one out means."""
    props = schema.get("properties")
    if not props:
        return schema
    lean_props = {name: {k: v for k, v in sub.items() if not (k == "default" and v is None)}
                  for name, sub in props.items()}
    return {**schema, "properties": lean_props}


class LeanSchemas(Transform):
    """Shows every tool in tools/list with `lean_output_schema` and `lean_input_schema` applied
    (each computed once; the tool itself is copied per listing, since visibility marks travel on
    the listed copy). Arguments are still validated against the tool's full model."""

    def __init__(self) -> None:
        self._schemas: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}

    async def list_tools(self, tools: Sequence[Tool]) -> Sequence[Tool]:
        return [self._leaned(t) for t in tools]

    def _leaned(self, tool: Tool) -> Tool:
        lean = self._schemas.get(tool.key)
        if lean is None:
            output = None if tool.output_schema is None else lean_output_schema(tool.output_schema)
            lean = self._schemas[tool.key] = (lean_input_schema(tool.parameters), output)
        return tool.model_copy(update={"parameters": lean[0], "output_schema": lean[1]})
