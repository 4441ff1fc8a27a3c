"""How a tool parameter's JSON schema is shown in tools/list: short, still saying what a call needs.

Why: tools/list is read into an assistant's context before the user says a word (issue 12), and
pydantic spells an optional or a Decimal parameter as an anyOf of one object per JSON type: about
150 characters for each price of place_order, ten of them. `CompactSchema` on a parameter's
Annotated type writes that anyOf as one type list, `{"type": ["string", "null"], "pattern": ...}`,
which accepts exactly the same values when each option's other keywords constrain only its own
type (a pattern never applies to null), and leaves out the keywords named in `omit`.

Only the shown schema changes. pydantic builds the validator from the type, not from this schema,
so what a call may pass is decided as before (tests/test_input_limits.py, tests/test_tool_fuzz.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# the keywords that constrain only instances of one type family (JSON Schema ignores them for others)
_FAMILY_KEYWORDS = {
    "string": frozenset({"pattern", "minLength", "maxLength", "format"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}),
}
_FAMILY = {"integer": "number"}  # an integer is a number: numeric keywords apply to both
_SHADOWED = frozenset({"title", "description"})  # an option's own, hidden by the parameter's

# a string's limits that protect the server (length, characters) and tell a caller nothing it
# needs, for a value it copies (a cursor) or names from an example (a symbol)
SERVER_LIMITS = ("pattern", "minLength", "maxLength")


class CompactSchema:
    """Annotated metadata: the parameter's JSON schema without `omit` keywords, its anyOf as one
    type list where that accepts the same values (otherwise the anyOf stays)."""

    def __init__(self, *, omit: Iterable[str] = ()) -> None:
        self.omit = frozenset(omit)

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = self._without_omitted(dict(handler(core_schema)))
        options = schema.get("anyOf")
        if not isinstance(options, list):
            return schema
        merged = _one_type_list([self._without_omitted(dict(o)) for o in options])
        if merged is None:
            return schema
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if "description" not in rest:  # keep the only description there is
            described = [o["description"] for o in options if "description" in o]
            if described:
                rest["description"] = described[0]
        return {**rest, **merged}

    def _without_omitted(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in schema.items() if k not in self.omit}


def _one_type_list(options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The options as one schema, or None when that would accept other values than their anyOf."""
    types: list[str] = []
    keywords: dict[str, Any] = {}
    families: set[str] = set()
    for option in options:
        option = {k: v for k, v in option.items() if k not in _SHADOWED}
        kind_or_kinds = option.pop("type", None)
        if kind_or_kinds is None:
            return None
        kinds: list[str] = kind_or_kinds if isinstance(kind_or_kinds, list) else [kind_or_kinds]
        own = {_FAMILY.get(kind, kind) for kind in kinds}
        if own & families:
            return None  # two options of one family: their keywords would mix
        families |= own
        if option and (len(own) != 1 or not set(option) <= _FAMILY_KEYWORDS.get(next(iter(own)), set())):
            return None  # a keyword that would constrain the other options too
        types.extend(kinds)
        keywords.update(option)
    return {"type": types, **keywords}
