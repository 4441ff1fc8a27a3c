"""Order flows: place, cancel, sync one order, reconcile all open orders.

Place: claim the command → validate and round → risk → write the order as "submitting" and
commit → call the venue with the client order id derived from the command → one transaction
applies what the venue said. A re-run of the same command finds its order and reconciles it
with the venue instead of sending it again. A venue timeout leaves the order "unknown" until
reconciliation finds out; it is never reported as a rejection.

The venue is the symbol's (the registry's routing: a live venue listing it, or paper): its
balances are what the risk check reads, its fee rate what it reserves, and the booking moves that
venue's balances and position; a live venue's balances are then mirrored (jobs/accounts.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from structlog.contextvars import bind_contextvars
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_incrementing

from jobs.accounts import mirror_balances_after_booking
from jobs.booking import Decide, Finish, apply_venue_order
from jobs.commands import CancelOrder, CommandResult, PlaceOrder, ReplaceOrder
from jobs.domain.instruments import Instrument, UnknownInstrumentError, get_instrument
from jobs.domain.order_lists import ENTRY, LEG_ORDER, legs
from jobs.domain.orders import OrderSpecError, normalize_order
from jobs.domain.replace import check_changes, current_spec, released, why_not_replaceable
from jobs.domain.risk import check_order
from jobs.effects import Effects, HeldPublish, effect
from jobs.ledger import claim_command, finish_command, new_command
from jobs.record_durability import record_must_be_flushed
from jobs.resources import Resources
from jobs.venues.base import OrderRequest, VenueOrder, VenueTimeout, VenueUnavailable
from storage.repos import Db, read
from storage.repos.commands import Commands
from storage.repos.ledger import LockedOrder
from storage.repos.orders import NewOrder, Orders, RiskInputs
from storage.repos.records import CommandRecord, OrderRecord
from storage.state.views import QuoteView
from storage.values import FINAL_COMMAND_STATUSES, OPEN_ORDER_STATUSES

log = logging.getLogger("tradingd.orders")
VENUE_CALL_TIMEOUT_S = 10.0
UNKNOWN_GIVE_UP_AFTER = timedelta(seconds=60)


def _asking_the_venue() -> AsyncRetrying:
    """Asking the venue about an order: three tries, 0.2 s then 0.4 s apart, before "no answer"."""
    return AsyncRetrying(stop=stop_after_attempt(3), wait=wait_incrementing(0.2, 0.2),
                         retry=retry_if_exception_type((VenueTimeout, VenueUnavailable, TimeoutError)))


def _result(row: CommandRecord) -> CommandResult:
    r = row.result or {}
    return CommandResult(command_id=row.id, kind=row.kind, status=row.status,
                         message=str(r.get("message", "")), order_id=r.get("order_id"),
                         schedule_id=r.get("schedule_id"), data=r, finished_at=row.updated_at)


async def _reject(res: Resources, command_id: str, message: str) -> CommandResult:
    async with effect(res) as (db, fx):
        row = await finish_command(db, fx, command_id, "rejected", message)
    assert row is not None
    return _result(row)


async def place_order(res: Resources, cmd: PlaceOrder) -> CommandResult:
    try:
        inst: Instrument | str = get_instrument(cmd.symbol)
    except UnknownInstrumentError as e:
        inst = str(e)  # the command is rejected with this reason, once claimed
    # the risk check's reference price, read from Redis while Postgres claims the command
    quote_read = (asyncio.ensure_future(res.reader.quote(inst.symbol)) if isinstance(inst, Instrument)
                  else None)
    try:
        # claim, validate, risk-check and record: one transaction
        async with effect(res, hold=True) as (db, fx):
            orders = Orders(db)
            cmd_row, inputs = await orders.claim_for_order(
                new_command(cmd), venue=res.venue_for(inst.symbol) if isinstance(inst, Instrument) else
                res.default_venue, quote_asset=inst.quote if isinstance(inst, Instrument) else "",
                base_asset=inst.base if isinstance(inst, Instrument) else "")
            if cmd_row.status in FINAL_COMMAND_STATUSES:
                # publish again, with its order: a run that died before publishing left the view behind
                fx.command = cmd_row
                if (placed := await orders.of_command(cmd.command_id)) is not None:
                    fx.order(placed)
                return _result(cmd_row)
            # the order is written in the claim's transaction, so only a repeat run can find one
            existing = await orders.of_command(cmd.command_id) if cmd_row.attempts > 1 else None
            quote = await quote_read if quote_read is not None and not existing else None
            order = None if existing else await _admit(res, db, fx, cmd, inst, inputs, quote)
    finally:
        if quote_read is not None and not quote_read.done():
            quote_read.cancel()  # not needed after all (a repeat run, or the claim failed)
        elif quote_read is not None and not quote_read.cancelled():
            quote_read.exception()  # an error of a read we did not use is not an error of the job
    published = fx.published
    assert published is not None
    if existing is not None:
        await published
        if existing.status == "submitting" and await _venue_never_received(res, existing):
            # the run before died between recording the order and the venue call (kill -9): send it
            # now, under the same client order id, which the venue refuses to book twice
            log.info("command %s re-run: the venue never received order %s; sending it now",
                     cmd.command_id, existing.id)
            return await _submit(res, cmd, existing, None)
        log.info("command %s re-run: reconciling order %s instead of sending it again", cmd.command_id,
                 existing.id)
        await sync_legs(res, existing)
        return await sync_order(res, existing.client_order_id, command_id=cmd.command_id)
    if order is None:
        await published
        return _result(fx.command or cmd_row)
    return await _submit(res, cmd, order, published)


async def _admit(res: Resources, db: Db, fx: Effects, cmd: PlaceOrder | ReplaceOrder, inst: Instrument | str,
                 inputs: RiskInputs, quote: QuoteView | None, *,
                 replaced: OrderRecord | None = None) -> OrderRecord | None:
    """Validate, round and risk-check the order; record it as "submitting", or reject the command.

    `inst` is the instrument, or why the symbol is unknown; `inputs` is what the risk check reads
    from Postgres, read with the command's claim (Orders.claim_for_order). `replaced`: the order a replacement
    replaces (jobs/replace.py), whose locked funds count as free for it.
    """
    if isinstance(inst, str):
        await finish_command(db, fx, cmd.command_id, "rejected", inst)
        return None
    free = {inst.quote: inputs.free_quote or Decimal(0), inst.base: inputs.free_base or Decimal(0)}
    venue = res.venue_for(inst.symbol)  # whose balances `inputs` holds (the claim read that venue's)
    fee_rate = res.fee_rate_of(venue)
    try:
        spec = normalize_order(cmd.spec(), inst)
        if replaced is not None:
            why = why_not_replaceable(replaced)
            if why is not None:
                raise OrderSpecError(why)
            check_changes(normalize_order(current_spec(replaced), inst), spec)
            asset, amount = released(replaced, inst, res.fee_rate_of(replaced.venue))
            free[asset] += amount
    except OrderSpecError as e:
        await finish_command(db, fx, cmd.command_id, "rejected", str(e))
        return None
    ref = None if quote is None or quote.stale else (quote.ask if spec.side == "buy" else quote.bid)
    verdict = check_order(spec, inst, trading_state=inputs.trading_state or "ACTIVE", limits=res.limits,
                          reference_price=ref, available_quote=free[inst.quote],
                          available_base=free[inst.base], fee_rate=fee_rate)
    if not verdict.allowed:
        await finish_command(db, fx, cmd.command_id, "rejected",
                             "risk check refused the order: " + verdict.message)
        return None
    now = datetime.now(UTC)
    fx.durable_at_commit = record_must_be_flushed(res.venues[venue])
    order_list = legs(spec, cmd.command_id)
    list_id = order_list[0].client_order_id if spec.order_class != "simple" else None
    orders, first = Orders(db), None
    for leg in order_list:  # one order, or each leg of an OCO or bracket
        order_id, leg_spec = "ord_" + uuid.uuid4().hex[:20], leg.spec
        fx.note(actor=cmd.source, action="order.submitting", subject=order_id, payload={
            "command_id": cmd.command_id, "client_order_id": leg.client_order_id, **leg_spec.canonical(),
            "order_list_id": list_id, "leg": leg.name or None, "risk": verdict.message})
        order, written = await orders.record_submitting(NewOrder(
            id=order_id, client_order_id=leg.client_order_id, command_id=cmd.command_id,
            venue=venue, symbol=inst.symbol, side=leg_spec.side, type=leg_spec.type,
            time_in_force=leg_spec.time_in_force, qty=leg_spec.qty, notional=leg_spec.notional,
            limit_price=leg_spec.limit_price, stop_price=leg_spec.stop_price, status="submitting",
            filled_qty=Decimal(0), fees=Decimal(0), created_at=now, updated_at=now,
            schedule_id=(replaced.schedule_id if replaced is not None else getattr(cmd, "schedule_id", None)),
            trail_amount=leg_spec.trail_amount, trail_percent=leg_spec.trail_percent,
            replaces=replaced.id if replaced is not None else None,
            order_list_id=list_id, leg=leg.name or None,
            deal_id=(replaced.deal_id if replaced is not None else getattr(cmd, "deal_id", None))),
            audit=list(fx.drafts), wait_for_flush=fx.durable_at_commit)
        fx.drafts.clear()  # carried by the insert (storage/repos/orders.py)
        fx.audit += written
        fx.order(order)
        first = first or order
    return first


async def _venue_never_received(res: Resources, order: OrderRecord) -> bool:
    """Whether the venue says it has no order under this client order id (not: it did not answer)."""
    try:
        async with asyncio.timeout(VENUE_CALL_TIMEOUT_S):
            return await res.venues[order.venue].get_order(order.client_order_id) is None
    except (VenueTimeout, VenueUnavailable, TimeoutError):
        return False


async def _submit(res: Resources, cmd: PlaceOrder, order: OrderRecord,
                  published: HeldPublish | None) -> CommandResult:
    """The venue call, with the client order id derived from the command; then book the outcome.

    The "submitting" order reaches the state view with the outcome, or on its own if the venue
    is slow to answer (`published`, see jobs.effects.HeldPublish).
    """
    bind_contextvars(client_order_id=order.client_order_id, venue=order.venue)  # on this job's log lines
    if order.order_list_id is not None:
        return await _submit_list(res, cmd, order, published)
    req = _request(order)
    try:
        async with asyncio.timeout(VENUE_CALL_TIMEOUT_S):
            vo = await res.venues[order.venue].submit_order(req)
    except (VenueTimeout, TimeoutError) as e:
        log.warning("venue timeout for %s: %s; reconciling", order.client_order_id, e)
        await _mark_unknown(res, order.id, cmd.command_id, "venue did not answer in time", after=published)
        return await sync_order(res, order.client_order_id, command_id=cmd.command_id)
    except VenueUnavailable as e:
        vo = VenueOrder(order.client_order_id, None, "rejected", Decimal(0), [],
                        f"venue unavailable, not sent: {e}")
    return await _apply(res, order, vo, cmd.command_id, actor=cmd.source, after=published)


def _request(order: OrderRecord) -> OrderRequest:
    return OrderRequest(order.client_order_id, order.symbol, order.side, order.type, order.time_in_force,
                        order.qty, order.notional, order.limit_price, order.stop_price, order.trail_amount,
                        order.trail_percent)


async def _submit_list(res: Resources, cmd: PlaceOrder, first: OrderRecord,
                       published: HeldPublish | None) -> CommandResult:
    """An OCO's or bracket's legs in one venue call (PaperVenue.submit_order_list), then booked in
    one transaction; the command's outcome is its first leg's."""
    assert first.order_list_id is not None
    async with read(res.db) as db:
        rows = await Orders(db).legs(first.order_list_id)
    rows.sort(key=lambda r: LEG_ORDER[r.leg or ""])
    has_entry = any(r.leg == ENTRY for r in rows)
    venue = res.venues[first.venue]
    submit_list = getattr(venue, "submit_order_list", None)
    vos: list[VenueOrder] = []
    why = f"venue {venue.name} takes no OCO or bracket orders"
    if submit_list is not None:
        try:
            async with asyncio.timeout(VENUE_CALL_TIMEOUT_S):
                vos = await submit_list(first.order_list_id, [
                    (_request(r), r.leg, has_entry and r.leg != ENTRY) for r in rows])
        except (VenueTimeout, TimeoutError) as e:
            log.warning("venue timeout for order list %s: %s; reconciling", first.order_list_id, e)
            await _mark_unknown(res, first.id, cmd.command_id, "venue did not answer in time",
                                after=published)
            for r in rows[1:]:
                await sync_order(res, r.client_order_id)
            return await sync_order(res, first.client_order_id, command_id=cmd.command_id)
        except VenueUnavailable as e:
            why = f"venue unavailable, not sent: {e}"
    by_cid = {vo.client_order_id: vo for vo in vos}
    async with effect(res, after=published) as (db, fx):
        for r in rows:
            vo = by_cid.get(r.client_order_id) or VenueOrder(r.client_order_id, None, "rejected", Decimal(0),
                                                             [], why)
            await apply_venue_order(db, fx, r.id, vo, fee_rate=res.fee_rate_of(r.venue), actor=cmd.source,
                                    decide=placed_outcome(cmd.command_id) if r.id == first.id else None)
        cmd_row = fx.command or await Commands(db).get(cmd.command_id)
    return _result(cmd_row)


async def _other_open_legs(res: Resources, order: OrderRecord) -> list[OrderRecord]:
    """The other legs of the order's list that we believe open (none for a simple order)."""
    if order.order_list_id is None:
        return []
    async with read(res.db) as db:
        return [r for r in await Orders(db).legs(order.order_list_id, open_only=True) if r.id != order.id]


async def sync_legs(res: Resources, order: OrderRecord) -> None:
    """Reconcile the other open legs of the order's list (the venue may have changed them with it)."""
    for r in await _other_open_legs(res, order):
        await sync_order(res, r.client_order_id)


async def _mark_unknown(res: Resources, order_id: str, command_id: str, why: str, *,
                        after: HeldPublish | None = None) -> None:
    now = datetime.now(UTC)
    async with effect(res, after=after) as (db, fx):
        order = await Orders(db).mark_unknown(order_id, now)
        if order is None:  # the venue's own update was booked first (a fill on its user stream)
            return
        fx.order(order)
        fx.note(actor="worker", action="order.unknown", subject=order.id,
                payload={"why": why, "client_order_id": order.client_order_id})
        fx.command = await Commands(db).mark_unknown(command_id, {
            "message": f"{why}; outcome unknown, reconciling by client order id {order.client_order_id}",
            "order_id": order.id}, now)


def placed_outcome(command_id: str | None) -> Decide:
    """What a place command's outcome is, given its order as booked (kept if it already has one)."""
    def decide(order: OrderRecord, booking: LockedOrder) -> Finish | None:
        cid = command_id or order.command_id
        actor, kind = booking.command_source or "worker", booking.command_kind or "place_order"
        if order.status == "rejected":
            return Finish(cid, "rejected", f"venue rejected the order: {order.reject_reason}", actor, kind,
                          only_if_open=True, result={"order_id": order.id})
        if order.status == "unknown":
            return None
        return Finish(cid, "succeeded", f"order {order.status}", actor, kind, only_if_open=True, result={
            "order_id": order.id, "status": order.status, "filled_qty": str(order.filled_qty),
            "avg_fill_price": str(order.avg_fill_price) if order.avg_fill_price else None})
    return decide


async def _apply(res: Resources, order: OrderRecord, vo: VenueOrder, command_id: str | None, *, actor: str,
                 after: HeldPublish | None = None) -> CommandResult:
    async with effect(res, after=after) as (db, fx):
        stored = await apply_venue_order(db, fx, order.id, vo, fee_rate=res.fee_rate_of(order.venue),
                                         actor=actor, decide=placed_outcome(command_id))
        cmd_row = fx.command or await Commands(db).get(command_id or stored.command_id)
    if fx.balances:  # a live venue's own figures replace our estimate (jobs/accounts.py)
        await mirror_balances_after_booking(res, order.venue)
    return _result(cmd_row)


async def book_report(res: Resources, order: OrderRecord, vo: VenueOrder) -> CommandResult:
    """What the caller already read from the venue about `order`, booked as sync_order books it
    (without asking the venue again)."""
    return await _apply(res, order, vo, None, actor="reconcile")


async def sync_order(res: Resources, client_order_id: str, *, command_id: str | None = None) -> CommandResult:
    """Ask the venue about one order and apply what it says (fills, status)."""
    async with read(res.db) as db:
        order = await Orders(db).by_client_order_id(client_order_id)
    bind_contextvars(client_order_id=client_order_id, venue=order.venue)
    venue = res.venues[order.venue]
    vo: VenueOrder | None = None
    try:
        async for attempt in _asking_the_venue():
            with attempt:
                async with asyncio.timeout(VENUE_CALL_TIMEOUT_S):
                    vo = await venue.get_order(client_order_id)
    except RetryError:
        vo = None  # no answer: reconciled below or on the next pass
    if vo is None:
        age = datetime.now(UTC) - order.created_at
        if order.status in ("submitting", "unknown") and age > UNKNOWN_GIVE_UP_AFTER:
            vo = VenueOrder(client_order_id, None, "rejected", Decimal(0), [], "never reached the venue")
        else:
            async with read(res.db) as db:
                return _result(await Commands(db).get(command_id or order.command_id))
    return await _apply(res, order, vo, command_id, actor="reconcile")


async def cancel_order(res: Resources, cmd: CancelOrder) -> CommandResult:
    """Cancels pass even when trading is HALTED: they only remove risk."""
    async with effect(res) as (db, fx):
        cmd_row = await claim_command(db, cmd)
        order = await Orders(db).get(cmd.order_id)
        if cmd_row.status in FINAL_COMMAND_STATUSES:
            fx.command = cmd_row  # publish it again: a run that died before publishing left the view behind
    if cmd_row.status in FINAL_COMMAND_STATUSES:
        return _result(cmd_row)
    if order is None:
        return await _reject(res, cmd.command_id, f"no order {cmd.order_id!r}; list_orders shows the ids")
    if order.status not in OPEN_ORDER_STATUSES:
        return await _reject(res, cmd.command_id,
                             f"order {order.id} is already {order.status}; nothing to cancel")
    bind_contextvars(client_order_id=order.client_order_id, venue=order.venue)
    venue = res.venues[order.venue]
    try:
        async with asyncio.timeout(VENUE_CALL_TIMEOUT_S):
            vo = await venue.cancel_order(order.client_order_id)
        # cancelling one leg of an OCO or bracket cancels the list: book the others with it
        legs_now = []
        for r in await _other_open_legs(res, order) if vo is not None else []:
            async with asyncio.timeout(VENUE_CALL_TIMEOUT_S):
                legs_now.append((r, await venue.get_order(r.client_order_id)))
    except (VenueTimeout, TimeoutError):
        vo, legs_now = None, []
    async with effect(res) as (db, fx):
        for row, leg_vo in legs_now:
            if leg_vo is not None:
                await apply_venue_order(db, fx, row.id, leg_vo, fee_rate=res.fee_rate_of(row.venue),
                                        actor=cmd.source)
        if vo is None:
            await finish_command(db, fx, cmd.command_id, "failed",
                                 f"venue did not confirm the cancel of {order.id}; check get_order and retry",
                                 order_id=order.id)
        else:
            await apply_venue_order(db, fx, order.id, vo, fee_rate=res.fee_rate_of(order.venue),
                                    actor=cmd.source, decide=cancel_outcome(cmd))
    assert fx.command is not None
    if fx.balances:
        await mirror_balances_after_booking(res, order.venue)
    return _result(fx.command)


def cancel_outcome(cmd: CancelOrder) -> Decide:
    def decide(order: OrderRecord, _: LockedOrder) -> Finish:
        if order.status == "cancelled":
            return Finish(cmd.command_id, "succeeded", f"order {order.id} cancelled", cmd.source, cmd.kind,
                          result={"order_id": order.id, "filled_qty": str(order.filled_qty)})
        return Finish(cmd.command_id, "rejected",
                      f"order {order.id} could not be cancelled: it is {order.status}", cmd.source, cmd.kind,
                      result={"order_id": order.id})
    return decide


async def reconcile_open_orders(res: Resources) -> int:
    """Sync every order we believe is open with its venue. Returns how many were checked."""
    async with read(res.db) as db:
        cids = await Orders(db).open_client_order_ids()
    for cid in cids:
        await sync_order(res, cid)
    return len(cids)
