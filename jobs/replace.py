"""Replacing a resting order (replace_order): cancel-replace under a new client order id.

Why a flow of its own rather than a cancel then a place: between the two, the order is gone and
its replacement not yet there (a fill in that gap is lost), and a crash between them leaves the
user with neither. The paper venue does both in one transaction (PaperVenue.replace_order).

The flow follows placing (jobs/orders.py): claim the command → check that the order can be
replaced, round the replacement and risk-check it with the old order's locked funds counted as
free (jobs/domain/replace.py, as the preview did) → record the replacement as "submitting" with
`replaces`, under a client order id derived from this command, and commit → one venue call →
one transaction books both outcomes (the old order cancelled, its funds released; the new one
open, filled or rejected, with the command's outcome). A re-run finds the replacement recorded
and reconciles both orders with the venue instead of asking again; one the venue never received
is sent then, under the same id. A venue timeout leaves the replacement "unknown" until
reconciliation settles it by client order id, as for any order.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from jobs.booking import apply_venue_order
from jobs.commands import CommandResult, ReplaceOrder
from jobs.domain.instruments import Instrument, UnknownInstrumentError, get_instrument
from jobs.effects import HeldPublish, effect
from jobs.ledger import finish_command, new_command
from jobs.orders import (
    VENUE_CALL_TIMEOUT_S,
    _admit,
    _mark_unknown,
    _result,
    _venue_never_received,
    placed_outcome,
    sync_order,
)
from jobs.resources import Resources
from jobs.venues.base import OrderRequest, VenueOrder, VenueTimeout, VenueUnavailable
from storage.repos.commands import Commands
from storage.repos.orders import Orders
from storage.repos.records import OrderRecord
from storage.values import FINAL_COMMAND_STATUSES

log = logging.getLogger("tradingd.orders")


async def replace_order(res: Resources, cmd: ReplaceOrder) -> CommandResult:
    try:
        inst: Instrument | str = get_instrument(cmd.symbol)
    except UnknownInstrumentError as e:
        inst = str(e)
    quote = await res.reader.quote(inst.symbol) if isinstance(inst, Instrument) else None
    async with effect(res, hold=True) as (db, fx):
        orders = Orders(db)
        cmd_row, inputs = await orders.claim_for_order(
            new_command(cmd), venue=res.venue_for(inst.symbol) if isinstance(inst, Instrument) else
            res.default_venue, quote_asset=inst.quote if isinstance(inst, Instrument) else "",
            base_asset=inst.base if isinstance(inst, Instrument) else "")
        if cmd_row.status in FINAL_COMMAND_STATUSES:
            fx.command = cmd_row  # publish again: a run that died before publishing left the view behind
            if (placed := await orders.of_command(cmd.command_id)) is not None:
                fx.order(placed)
            return _result(cmd_row)
        existing = await orders.of_command(cmd.command_id) if cmd_row.attempts > 1 else None
        old = await orders.get(cmd.order_id)
        new = None
        if existing is None:
            if old is None:
                await finish_command(db, fx, cmd.command_id, "rejected",
                                     f"no order {cmd.order_id!r}; list_orders shows the ids")
            else:
                new = await _admit(res, db, fx, cmd, inst, inputs, quote, replaced=old)
    published = fx.published
    assert published is not None
    if existing is not None:
        await published
        assert old is not None  # the replacement names it, and orders are never deleted
        if existing.status == "submitting" and await _venue_never_received(res, existing):
            log.info("command %s re-run: the venue never received replacement %s; sending it now",
                     cmd.command_id, existing.id)
            return await _send(res, cmd, old, existing, None)
        await sync_order(res, old.client_order_id)
        return await sync_order(res, existing.client_order_id, command_id=cmd.command_id)
    if new is None:
        await published
        return _result(fx.command or cmd_row)
    assert old is not None  # a replacement was recorded for it
    return await _send(res, cmd, old, new, published)


async def _send(res: Resources, cmd: ReplaceOrder, old: OrderRecord, new: OrderRecord,
                published: HeldPublish | None) -> CommandResult:
    """The venue's cancel-replace; then book what it says of both orders in one transaction."""
    venue = res.venues[new.venue]
    req = OrderRequest(new.client_order_id, new.symbol, new.side, new.type, new.time_in_force, new.qty,
                       new.notional, new.limit_price, new.stop_price, new.trail_amount, new.trail_percent)
    replace = getattr(venue, "replace_order", None)
    old_vo: VenueOrder | None = None
    if replace is None:
        vo = VenueOrder(new.client_order_id, None, "rejected", Decimal(0), [],
                        f"venue {venue.name} cannot replace orders: cancel the order and place a new one")
    else:
        try:
            async with asyncio.timeout(VENUE_CALL_TIMEOUT_S):
                old_vo, vo = await replace(old.client_order_id, req)
        except (VenueTimeout, TimeoutError) as e:
            log.warning("venue timeout replacing %s by %s: %s; reconciling", old.client_order_id,
                        new.client_order_id, e)
            await _mark_unknown(res, new.id, cmd.command_id, "venue did not answer in time", after=published)
            await sync_order(res, old.client_order_id)
            return await sync_order(res, new.client_order_id, command_id=cmd.command_id)
        except VenueUnavailable as e:
            vo = VenueOrder(new.client_order_id, None, "rejected", Decimal(0), [],
                            f"venue unavailable, not sent: {e}")
    async with effect(res, after=published) as (db, fx):
        if old_vo is not None:
            await apply_venue_order(db, fx, old.id, old_vo, fee_rate=res.fee_rate_of(old.venue),
                                    actor=cmd.source)
        await apply_venue_order(db, fx, new.id, vo, fee_rate=res.fee_rate_of(new.venue), actor=cmd.source,
                                decide=placed_outcome(cmd.command_id))
        cmd_row = fx.command or await Commands(db).get(cmd.command_id)
    return _result(cmd_row)
