"""Previewing a replacement (preview_replace) and rebuilding it when its token is used (replace_order).

Why here and not in the bridge: the replacement is built from the order as recorded and the
amendment by the same domain rules the worker applies (jobs/domain/replace.py), and valued by
the same preview as a new order (jobs/preview.py), with the funds the old order holds counted
as free. Its token binds the order it replaces and the replacement's exact terms.
"""

from __future__ import annotations

from decimal import Decimal

from redis.asyncio import Redis

from jobs.domain.instruments import get_instrument
from jobs.domain.orders import OrderSpec, OrderSpecError, normalize_order
from jobs.domain.replace import amend, check_changes, current_spec, released, why_not_replaceable
from jobs.preview import InputRejected, PreviewResult, make_preview
from jobs.venues.registry import pricing_for
from storage.settings import Settings
from storage.state.reader import StateReader
from storage.state.views import OrderView


def replacement(order: OrderView, changes: dict[str, Decimal | None]) -> OrderSpec:
    """The replacement's terms, normalized: the order as recorded with `changes` (InputRejected
    if it cannot be replaced with them)."""
    try:
        inst = get_instrument(order.symbol)
        current = normalize_order(current_spec(order), inst)
        new = normalize_order(amend(current, changes), inst)
        check_changes(current, new)
    except OrderSpecError as e:
        raise InputRejected(str(e)) from None
    return new


async def preview_replacement(reader: StateReader, redis: Redis, settings: Settings, order: OrderView,
                              changes: dict[str, Decimal | None]) -> PreviewResult:
    """Value and risk-check the replacement as preview_order does, and store its token."""
    why = why_not_replaceable(order)
    if why is not None:
        raise InputRejected(why)
    spec = replacement(order, changes)
    freed = released(order, get_instrument(order.symbol), pricing_for(settings, order.venue).fee_rate)
    return await make_preview(reader, redis, settings, spec, replaces=order.order_id, released=freed)
