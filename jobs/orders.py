"""Order flows: place, cancel, sync one order, reconcile all open orders.

Place: claim the command → validate and round → risk → write the order as "submitting" and
commit → call the venue with the client order id derived from the command → one transaction
applies what the venue said. A re-run of the same command finds its order and reconciles it
with the venue instead of sending it again. A venue timeout leaves the order "unknown" until
reconciliation finds out; it is never reported as a rejection.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from jobs.commands import CancelOrder, CommandResult, PlaceOrder
from jobs.domain.instruments import UnknownInstrumentError, get_instrument, normalize_symbol
from jobs.domain.orders import OrderSpecError, client_order_id_for, normalize_order
from jobs.domain.risk import check_order
from jobs.ledger import apply_venue_order, balance_row, claim_command, finish_command
from jobs.publish import Effects, publish
from jobs.resources import Resources
from jobs.venues.base import OrderRequest, VenueOrder, VenueTimeout, VenueUnavailable
from storage.audit import append_audit
from storage.models import CommandRow, OrderRow, TradingControlRow
from storage.state.views import QuoteView
from storage.values import OPEN_ORDER_STATUSES

log = logging.getLogger("tradingd.orders")
VENUE_CALL_TIMEOUT_S = 10.0
UNKNOWN_GIVE_UP_AFTER = timedelta(seconds=60)


def _result(row: CommandRow) -> CommandResult:
    r = row.result or {}
    return CommandResult(command_id=row.id, kind=row.kind, status=row.status,  # type: ignore[arg-type]
                         message=str(r.get("message", "")), order_id=r.get("order_id"),
                         schedule_id=r.get("schedule_id"), data=r, finished_at=row.updated_at)


async def _reject(res: Resources, cmd_row: CommandRow, message: str) -> CommandResult:
    fx = Effects()
    async with res.sessions.begin() as s:
        row = await s.get(CommandRow, cmd_row.id, with_for_update=True)
        assert row is not None
        await finish_command(s, fx, row, "rejected", message)
    await publish(res, fx)
    return _result(row)


async def place_order(res: Resources, cmd: PlaceOrder) -> CommandResult:
    quote = await res.reader.quote(normalize_symbol(cmd.symbol))
    fx = Effects()
    async with res.sessions.begin() as s:  # claim, validate, risk-check and record: one transaction
        cmd_row = await claim_command(s, cmd)
        if cmd_row.status in ("succeeded", "rejected", "failed"):
            return _result(cmd_row)
        existing = (await s.execute(select(OrderRow).where(OrderRow.command_id == cmd.command_id))).scalar_one_or_none()
        order = None if existing else await _admit(res, s, fx, cmd, cmd_row, quote)
    if existing is not None:
        log.info("command %s re-run: reconciling order %s instead of sending it again", cmd.command_id, existing.id)
        return await sync_order(res, existing.client_order_id, command_id=cmd.command_id)
    await publish(res, fx)
    if order is None:
        return _result(cmd_row)
    return await _submit(res, cmd, order)


async def _admit(res: Resources, s: AsyncSession, fx: Effects, cmd: PlaceOrder, cmd_row: CommandRow,
                 quote: QuoteView | None) -> OrderRow | None:
    """Validate, round and risk-check the order; record it as "submitting", or reject the command."""
    try:
        inst = get_instrument(cmd.symbol)
        spec = normalize_order(cmd.spec(), inst)
    except (UnknownInstrumentError, OrderSpecError) as e:
        await finish_command(s, fx, cmd_row, "rejected", str(e))
        return None
    ref = None if quote is None or quote.stale else (quote.ask if spec.side == "buy" else quote.bid)
    venue = res.default_venue
    control = await s.get(TradingControlRow, 1)
    quote_bal = await balance_row(s, venue, inst.quote)
    base_bal = await balance_row(s, venue, inst.base)
    verdict = check_order(spec, inst, trading_state=control.state if control else "ACTIVE", limits=res.limits,
                          reference_price=ref, available_quote=quote_bal.total - quote_bal.locked,
                          available_base=base_bal.total - base_bal.locked, fee_rate=res.fee_rate)
    if not verdict.allowed:
        await finish_command(s, fx, cmd_row, "rejected", "risk check refused the order: " + verdict.message)
        return None
    order = OrderRow(
        id="ord_" + uuid.uuid4().hex[:20], client_order_id=client_order_id_for(cmd.command_id),
        command_id=cmd.command_id, venue=venue, symbol=inst.symbol, side=spec.side, type=spec.type,
        time_in_force=spec.time_in_force, qty=spec.qty, notional=spec.notional,
        limit_price=spec.limit_price, stop_price=spec.stop_price, status="submitting",
        filled_qty=Decimal(0), fees=Decimal(0), schedule_id=cmd.schedule_id,
    )
    s.add(order)
    cmd_row.status = "running"
    fx.audit.append(await append_audit(s, actor=cmd.source, action="order.submitting", subject=order.id, payload={
        "command_id": cmd.command_id, "client_order_id": order.client_order_id, **spec.canonical(),
        "risk": verdict.message}))
    fx.order(order)
    return order


async def _submit(res: Resources, cmd: PlaceOrder, order: OrderRow) -> CommandResult:
    """The venue call, with the client order id derived from the command; then book the outcome."""
    req = OrderRequest(order.client_order_id, order.symbol, order.side, order.type,  # type: ignore[arg-type]
                       order.time_in_force, order.qty, order.notional,  # type: ignore[arg-type]
                       order.limit_price, order.stop_price)
    try:
        vo = await asyncio.wait_for(res.venues[order.venue].submit_order(req), VENUE_CALL_TIMEOUT_S)
    except (VenueTimeout, TimeoutError) as e:
        log.warning("venue timeout for %s: %s; reconciling", order.client_order_id, e)
        await _mark_unknown(res, order.id, cmd.command_id, "venue did not answer in time")
        return await sync_order(res, order.client_order_id, command_id=cmd.command_id)
    except VenueUnavailable as e:
        vo = VenueOrder(order.client_order_id, None, "rejected", Decimal(0), [], f"venue unavailable, not sent: {e}")
    return await _apply(res, order.id, vo, cmd.command_id, actor=cmd.source)


async def _mark_unknown(res: Resources, order_id: str, command_id: str, why: str) -> None:
    fx = Effects()
    async with res.sessions.begin() as s:
        order = await s.get(OrderRow, order_id, with_for_update=True)
        cmd_row = await s.get(CommandRow, command_id, with_for_update=True)
        assert order is not None and cmd_row is not None
        order.status = "unknown"
        fx.order(order)
        fx.audit.append(await append_audit(s, actor="worker", action="order.unknown", subject=order.id,
                                           payload={"why": why, "client_order_id": order.client_order_id}))
        cmd_row.status = "unknown"
        cmd_row.result = {"message": f"{why}; outcome unknown, reconciling by client order id "
                                     f"{order.client_order_id}", "order_id": order.id}
        fx.command = cmd_row
    await publish(res, fx)


async def _apply(res: Resources, order_id: str, vo: VenueOrder, command_id: str | None, *, actor: str) -> CommandResult:
    fx = Effects()
    async with res.sessions.begin() as s:
        order = await s.get(OrderRow, order_id, with_for_update=True)
        assert order is not None
        await apply_venue_order(s, fx, order, vo, fee_rate=res.fee_rate, actor=actor)
        cmd_row = await s.get(CommandRow, command_id or order.command_id, with_for_update=True)
        assert cmd_row is not None
        if cmd_row.kind == "place_order" and cmd_row.status not in ("succeeded", "rejected", "failed"):
            if order.status == "rejected":
                await finish_command(s, fx, cmd_row, "rejected", f"venue rejected the order: {order.reject_reason}",
                                     order_id=order.id)
            elif order.status != "unknown":
                await finish_command(s, fx, cmd_row, "succeeded", f"order {order.status}", order_id=order.id,
                                     status=order.status, filled_qty=str(order.filled_qty),
                                     avg_fill_price=str(order.avg_fill_price) if order.avg_fill_price else None)
    await publish(res, fx)
    return _result(cmd_row)


async def sync_order(res: Resources, client_order_id: str, *, command_id: str | None = None) -> CommandResult:
    """Ask the venue about one order and apply what it says (fills, status)."""
    async with res.sessions() as s:
        order = (await s.execute(select(OrderRow).where(OrderRow.client_order_id == client_order_id))).scalar_one()
    venue = res.venues[order.venue]
    vo: VenueOrder | None = None
    for attempt in range(3):
        try:
            vo = await asyncio.wait_for(venue.get_order(client_order_id), VENUE_CALL_TIMEOUT_S)
            break
        except (VenueTimeout, VenueUnavailable, TimeoutError):
            await asyncio.sleep(0.2 * (attempt + 1))
    if vo is None:
        age = datetime.now(UTC) - order.created_at
        if order.status in ("submitting", "unknown") and age > UNKNOWN_GIVE_UP_AFTER:
            vo = VenueOrder(client_order_id, None, "rejected", Decimal(0), [], "never reached the venue")
        else:
            async with res.sessions() as s:
                return _result(await s.get(CommandRow, command_id or order.command_id))  # type: ignore[arg-type]
    return await _apply(res, order.id, vo, command_id, actor="reconcile")


async def cancel_order(res: Resources, cmd: CancelOrder) -> CommandResult:
    """Cancels pass even when trading is HALTED: they only remove risk."""
    async with res.sessions.begin() as s:
        cmd_row = await claim_command(s, cmd)
        order = await s.get(OrderRow, cmd.order_id)
    if cmd_row.status in ("succeeded", "rejected", "failed"):
        return _result(cmd_row)
    if order is None:
        return await _reject(res, cmd_row, f"no order {cmd.order_id!r}; list_orders shows the ids")
    if order.status not in OPEN_ORDER_STATUSES:
        return await _reject(res, cmd_row, f"order {order.id} is already {order.status}; nothing to cancel")
    try:
        vo = await asyncio.wait_for(res.venues[order.venue].cancel_order(order.client_order_id), VENUE_CALL_TIMEOUT_S)
    except (VenueTimeout, TimeoutError):
        vo = None
    fx = Effects()
    async with res.sessions.begin() as s:
        row = await s.get(OrderRow, order.id, with_for_update=True)
        cmd_row = await s.get(CommandRow, cmd.command_id, with_for_update=True)  # type: ignore[assignment]
        assert row is not None
        if vo is None:
            await finish_command(s, fx, cmd_row, "failed",
                                 f"venue did not confirm the cancel of {row.id}; check get_order and retry",
                                 order_id=row.id)
        else:
            await apply_venue_order(s, fx, row, vo, fee_rate=res.fee_rate, actor=cmd.source)
            if row.status == "cancelled":
                await finish_command(s, fx, cmd_row, "succeeded", f"order {row.id} cancelled", order_id=row.id,
                                     filled_qty=str(row.filled_qty))
            else:
                await finish_command(s, fx, cmd_row, "rejected",
                                     f"order {row.id} could not be cancelled: it is {row.status}", order_id=row.id)
    await publish(res, fx)
    return _result(cmd_row)


async def reconcile_open_orders(res: Resources) -> int:
    """Sync every order we believe is open with its venue. Returns how many were checked."""
    async with res.sessions() as s:
        cids = (await s.execute(select(OrderRow.client_order_id).where(
            OrderRow.status.in_(tuple(OPEN_ORDER_STATUSES))))).scalars().all()
    for cid in cids:
        await sync_order(res, cid)
    return len(cids)
