"""CompactSchema (mcp_bridge/param_schema.py): a shorter schema that accepts the same values, and a
validator it leaves alone.

The claim is checked against a JSON Schema validator (jsonschema) on values around each keyword's
edges, and against pydantic: the same values pass or fail with and without the annotation.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import jsonschema
import pytest
from pydantic import Field, TypeAdapter, ValidationError

from mcp_bridge.context import OptionalPositiveDecimal, Symbol
from mcp_bridge.param_schema import CompactSchema

Amount = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
ShortId = Annotated[str, Field(min_length=4, max_length=8, pattern=r"^ord_[a-z0-9]+$")]
Bounded = Annotated[int, Field(ge=60, le=600)]

SAMPLES: list[Any] = [None, 0, -1, 1, 59, 60, 600, 601, 0.5, "0", "1.5", "abc", "", "ord_", "ord_1",
                      "ord_12345", "ORD_1", "2026-01-02T03:04:05Z", True, [], {}, "nan"]

PLAIN_AND_COMPACT = [
    (Amount | None, Annotated[Amount | None, CompactSchema()]),
    (ShortId | None, Annotated[ShortId | None, CompactSchema()]),
    (Bounded | None, Annotated[Bounded | None, CompactSchema()]),
    (datetime | None, Annotated[datetime | None, CompactSchema()]),
]


def _schema(tp: Any) -> dict[str, Any]:
    return TypeAdapter(tp).json_schema()


def _schema_accepts(schema: dict[str, Any], value: Any) -> bool:
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).is_valid(value)


def _pydantic_accepts(tp: Any, value: Any) -> bool:
    try:
        TypeAdapter(tp).validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("plain", "compact"), PLAIN_AND_COMPACT)
def test_the_type_list_accepts_exactly_what_the_anyof_accepted(plain: Any, compact: Any) -> None:
    before, after = _schema(plain), _schema(compact)
    assert "anyOf" in before and "anyOf" not in after and isinstance(after["type"], list)
    assert len(json.dumps(after)) < len(json.dumps(before))
    for value in SAMPLES:
        assert _schema_accepts(after, value) == _schema_accepts(before, value), (after, value)


@pytest.mark.parametrize(("plain", "compact"), PLAIN_AND_COMPACT)
def test_what_pydantic_accepts_is_unchanged(plain: Any, compact: Any) -> None:
    for value in SAMPLES:
        assert _pydantic_accepts(compact, value) == _pydantic_accepts(plain, value), value


def test_an_anyof_that_one_type_list_would_widen_stays_as_it_is() -> None:
    two_patterns = Annotated[
        Annotated[str, Field(pattern=r"^a")] | Annotated[str, Field(pattern=r"^b")], CompactSchema()]
    assert "anyOf" in _schema(two_patterns)  # both strings: one list would need both patterns
    int_or_number = Annotated[Annotated[int, Field(ge=5)] | Annotated[float, Field(le=1)], CompactSchema()]
    assert "anyOf" in _schema(int_or_number)  # an integer is a number: the bounds would mix


def test_the_shared_parameter_types_show_short_and_still_refuse_what_they_refused() -> None:
    assert _schema(OptionalPositiveDecimal) == {"type": ["number", "string", "null"]}
    assert _schema(Symbol) == {"description": "e.g. 'BTC/USDT' or 'SPY'", "type": "string"}
    for refused in (0, "-1", "nan", "inf", True):
        assert not _pydantic_accepts(OptionalPositiveDecimal, refused), refused
    assert all(_pydantic_accepts(OptionalPositiveDecimal, v) for v in ("0.1", 2, None))
    for refused in ("", "BTC USDT", "x" * 33, "BTC;DROP"):
        assert not _pydantic_accepts(Symbol, refused), refused
