"""The paper venue's order lists: what one leg's fill, trigger or cancel does to the other legs.

Applied in memory to the legs as locked in the venue's transaction (jobs/venues/paper/execution.py
locks every leg of a list, in client order id order, before changing any), so a list's legs
change together or not at all: an OCO leg that fills cancels the other in the fill's own
transaction, exactly once, whatever restarts. The rules are jobs.domain.order_lists'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from jobs.domain.order_lists import sibling_after

# the legs as locked, by client order id: book orders (frozen records), each replaced by its
# successor when something happens to it, so the caller sees every leg as it now is
Legs = dict[str, Any]
# matches the leg of this client order id (replacing it in the legs) and returns its fill or None
Match = Callable[[str], Any | None]


def cascade(legs: Legs, source: str, event: str, match: Match) -> dict[str, Any]:
    """Apply `event` ("filled", "triggered", "cancelled") of the leg `source` to the other `legs`.
    Legs that open (a bracket's exits when the entry fills) are matched at once with `match`, and
    their own fills and triggers cascade in turn. Returns the fills made, by client order id."""
    fills: dict[str, Any] = {}
    opened = []
    for cid, leg in legs.items():
        if cid == source:
            continue
        status = sibling_after(legs[source].leg, event, leg.status)
        if status is not None:
            legs[cid] = replace(leg, status=status)
            if status == "open":
                opened.append(cid)
    for cid in opened:
        if legs[cid].status != "open":  # cancelled by a leg that filled before it
            continue
        fills |= match_leg(legs, cid, match)
    return fills


def match_leg(legs: Legs, cid: str, match: Match) -> dict[str, Any]:
    """Match one open leg and let its fill or trigger act on the other legs; returns every fill
    made, by client order id."""
    was_triggered = legs[cid].triggered
    fill = match(cid)
    if fill is not None:
        return {cid: fill} | cascade(legs, cid, "filled", match)
    if legs[cid].triggered and not was_triggered:
        return cascade(legs, cid, "triggered", match)
    return {}
