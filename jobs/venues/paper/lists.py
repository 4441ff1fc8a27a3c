"""The paper venue's order lists: what one leg's fill, trigger or cancel does to the other legs.

Applied in memory to the legs as locked in the venue's transaction (jobs/venues/paper/execution.py
locks every leg of a list, in client order id order, before changing any), so a list's legs
change together or not at all: an OCO leg that fills cancels the other in the fill's own
transaction, exactly once, whatever restarts. The rules are jobs.domain.order_lists'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobs.domain.order_lists import sibling_after


def cascade(legs: list[Any], source: Any, event: str, match: Callable[[Any], Any | None]) -> dict[str, Any]:
    """Apply `event` ("filled", "triggered", "cancelled") of `source` to the other `legs` (book
    orders, changed in place). Legs that open (a bracket's exits when the entry fills) are matched
    at once with `match` (which returns a fill or None), and their own fills and triggers cascade
    in turn. Returns the fills made, by client order id."""
    fills: dict[str, Any] = {}
    opened = []
    for leg in legs:
        if leg is source:
            continue
        status = sibling_after(source.leg, event, leg.status)
        if status is not None:
            leg.status = status
            if status == "open":
                opened.append(leg)
    for leg in opened:
        if leg.status != "open":  # cancelled by a leg that filled before it
            continue
        fills |= match_leg(legs, leg, match)
    return fills


def match_leg(legs: list[Any], leg: Any, match: Callable[[Any], Any | None]) -> dict[str, Any]:
    """Match one open leg (`match` returns its fill or None) and let its fill or trigger act on the
    other legs; returns every fill made, by client order id."""
    was_triggered = leg.triggered
    fill = match(leg)
    if fill is not None:
        return {leg.client_order_id: fill} | cascade(legs, leg, "filled", match)
    if leg.triggered and not was_triggered:
        return cascade(legs, leg, "triggered", match)
    return {}
