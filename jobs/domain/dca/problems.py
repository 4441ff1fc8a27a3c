"""Collecting every problem of a DCA configuration before refusing it, each at its field.

Why: an assistant fixing a bot one refusal at a time needs as many round trips as there are
mistakes; 3Commas's form shows every bad field at once, and so do we. A model's after-validator
gathers its problems in a `Problems` and raises them together as one pydantic ValidationError,
each at its own location; pydantic merges these with its own type errors and with the problems of
sibling fields, so one `model_validate` call reports all of them. `describe` turns the error into
the lines a tool answers with ("safety_orders.volume_scale: ...").

Every message starts with the field's name and says what to change, because it reaches an
assistant that will retry with new input.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

ERROR_TYPE = "dca_config"  # the pydantic error type of every problem raised here


class FrozenModel(BaseModel):
    """Base of every configuration model: immutable, and unknown fields refused (a misspelt field
    silently ignored would run a bot other than the one asked for)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def refusal(message: str) -> PydanticCustomError:
    """One problem raised from a field validator (pydantic puts it at the field's location)."""
    return PydanticCustomError(ERROR_TYPE, "{problem}", {"problem": message})


class Problems:
    """The problems found in one model; `raise_if_any` refuses the model with all of them."""

    def __init__(self) -> None:
        self._found: list[tuple[tuple[str | int, ...], str, object]] = []

    def add(self, loc: str | tuple[str | int, ...], message: str, value: object = None) -> None:
        """One problem at `loc` (a field name, or a path inside this model)."""
        self._found.append(((loc,) if isinstance(loc, str) else loc, message, value))

    def __bool__(self) -> bool:
        return bool(self._found)

    def raise_if_any(self, title: str) -> None:
        if not self._found:
            return
        details = [
            InitErrorDetails(type=refusal(message), loc=loc, input=value)
            for loc, message, value in self._found
        ]
        raise ValidationError.from_exception_data(title, details)


def check_positive(problems: Problems, name: str, value: Decimal, *, what: str, example: str,
                   loc: str | tuple[str | int, ...] | None = None) -> bool:
    """A finite amount above zero; a refusal says what the field is and gives an example."""
    if value.is_finite() and value > 0:
        return True
    problems.add(loc or name, f"{name} must be above 0, got {value}: give {what}, e.g. {example}", value)
    return False


def describe(error: ValidationError) -> list[str]:
    """One line per problem, prefixed with the field's dotted path (pydantic's own type errors too)."""
    lines = []
    for e in error.errors(include_url=False):
        path = ".".join(str(part) for part in e["loc"])
        lines.append(f"{path}: {e['msg']}" if path else e["msg"])
    return lines


def join(lines: Iterable[str]) -> str:
    return "; ".join(lines)
