"""Driving one DCA deal: lock it, step it, save it, then carry out what it asked (ARCHITECTURE.md
flow 3: fill → job → order, position and deal updated → the deal decides the next orders → venue).

One turn, in one transaction: the deal's row is locked (FOR UPDATE: every job on one deal runs
its turn alone), the deal is caught up with the ledger (jobs/bots/deal_feed.py), given the
turn's own events (a price tick, a user action, a reconciliation's findings), and saved with its
typed columns and audit notes. Only after that commit are its intents carried out
(jobs/bots/deal_orders.py): the deal machine's contract, SAVE THE DEAL BEFORE CARRYING OUT ITS
INTENTS, so a crash between the two loses intents, never the deal's knowledge of them; the
placements come back from reconciliation under the same client order ids (deal_recovery.py).

A market order fills while it is placed and a refusal is known at once, so turns repeat (a few
at most) until the deal asks for nothing more. Every turn is idempotent: a fill already applied
is skipped by id, an order already placed is found by its command, so a duplicated event or a
re-run job changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from jobs.bots.bot_publish import publish, publish_bots
from jobs.bots.deal_codec import deal_from_json, updated_record
from jobs.bots.deal_feed import ledger_events, lost_placements, unrecorded
from jobs.bots.deal_orders import SOURCE, carry_out
from jobs.domain.dca.deal import step
from jobs.domain.dca.deal_events import DealEvent, PanicSell
from jobs.domain.dca.deal_intents import CancelOrder, Intent, Note, PlaceOrder
from jobs.domain.dca.deal_state import Deal, DealStatus
from jobs.domain.instruments import Instrument, get_instrument
from jobs.effects import Effects, effect
from jobs.exclusive import exclusive
from jobs.resources import Resources
from storage.repos import Db
from storage.repos.bots import Bots
from storage.repos.deal_ledger import DealLedger
from storage.repos.deals import PANIC_REQUESTED, DealRecord, Deals

log = logging.getLogger("tradingd.deals")
MAX_TURNS = 8  # a turn's orders answered at once (market fills, refusals) start the next; never a loop

# what a caller adds inside the deal's transaction, given the deal before and after and the notes
Within = Callable[[Db, Effects, Deal | None, Deal | None, list[str]], Awaitable[None]]
# the turn's own step, made once the deal is locked and caught up (a reconciliation needs the deal,
# a user's command its own row)
Events = Callable[[Db, Deal, Instrument], Awaitable[tuple[Deal, list[Intent]]]]


@dataclass
class Turn:
    deal: Deal | None = None
    intents: list[Intent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bots_changed: list[str] = field(default_factory=list)  # their views are written after the commit
    saved: bool = False


async def drive(res: Resources, deal_id: str, events: Sequence[DealEvent] = (), *,
                within: Within | None = None, then: Events | None = None) -> Deal | None:
    """Turns until the deal asks for nothing more (module docstring); the deal as last saved. Holds
    the deal's lease throughout (`deal_lease`), so no other job carries out this deal's intents."""
    async with deal_lease(res, deal_id):
        turn = await run_turn(res, deal_id, events, within=within, then=then)
        changed = turn.saved
        for _ in range(MAX_TURNS):
            actions = [i for i in turn.intents if isinstance(i, PlaceOrder | CancelOrder)]
            if turn.deal is None or not actions:
                break
            answers = await carry_out(res, deal_id, actions)
            turn = await run_turn(res, deal_id, answers)
            changed = True
        if changed:  # once its orders are placed too: the deal's view lists them (bot_publish.py)
            await publish(res, deals=[deal_id])
        return turn.deal


def deal_lease(res: Resources, deal_id: str) -> AbstractAsyncContextManager[None]:
    """One job at a time drives a deal, from its turn through the venue calls (jobs/exclusive.py)."""
    return exclusive(res.redis, f"deal:{deal_id}")


async def run_turn(res: Resources, deal_id: str, events: Sequence[DealEvent] = (), *,
                   within: Within | None = None, then: Events | None = None) -> Turn:
    """One locked turn: catch up with the ledger, apply `events` (and `then`'s), save; no venue call."""
    turn = Turn()
    async with effect(res) as (db, fx):
        record = await Deals(db).get(deal_id, lock=True)
        if record is None:
            if within is not None:
                await within(db, fx, None, None, [f"no deal {deal_id!r}"])
            return turn
        before = deal = deal_from_json(record.state)
        instrument = get_instrument(deal.pair)
        ledger = DealLedger(db)
        orders = await ledger.orders(deal_id)
        commands = await ledger.commands(unrecorded(deal, orders))
        now = datetime.now(UTC)
        pending: list[DealEvent] = [*ledger_events(deal, orders, commands, instrument, now)]
        if record.status == PANIC_REQUESTED:  # delete_bot with panic_sell (storage/repos/deals.py)
            pending.append(PanicSell(now))
        pending.extend(events)
        for event in pending:
            deal, out = step(deal, event, instrument)
            turn.intents.extend(out)
        if then is not None:
            deal, out = await then(db, deal, instrument)
            turn.intents.extend(out)
        # placed before this turn but never tried (and still wanted): the job that saved them died
        still = {o.client_order_id for o in deal.orders if not o.cancelling}
        lost = lost_placements(before, orders, commands, now)
        turn.intents.extend(i for i in lost if i.client_order_id in still)
        turn.notes = [i.text for i in turn.intents if isinstance(i, Note)]
        turn.deal = deal
        if within is not None:
            await within(db, fx, before, deal, turn.notes)
        if deal != before or record.status == PANIC_REQUESTED:
            turn.saved = True
            if await _save(db, fx, record, before, deal, turn.notes):
                turn.bots_changed.append(deal.bot_id)
    if turn.bots_changed:
        await publish_bots(res, turn.bots_changed)
    return turn


async def _save(db: Db, fx: Effects, record: DealRecord, before: Deal, deal: Deal, notes: list[str]) -> bool:
    """The deal's new state with its columns and audit entries; a stop loss that says so disables
    its bot in the same transaction (True: the bot changed)."""
    await Deals(db).save(updated_record(record, deal))
    for text in notes:
        log.info("%s", text)
    if notes or deal.status is not before.status:
        fx.note(actor=SOURCE, action=f"deal.{deal.status.value}", subject=deal.id, payload={
            "status": deal.status.value, "was": before.status.value, "notes": notes[:20]})
    sl = deal.config.stop_loss
    if (deal.status is DealStatus.STOP_LOSS_FINISHED and before.status is not DealStatus.STOP_LOSS_FINISHED
            and sl is not None and sl.action == "stop_loss_and_disable_bot"):
        why = f"stop loss of deal {deal.id} (stop_loss_and_disable_bot)"
        return await disable_bot(db, fx, deal.bot_id, why)
    return False


async def disable_bot(db: Db, fx: Effects, bot_id: str, reason: str) -> bool:
    """Disable the bot (it starts no new deal; its open deals run on); False if it already was."""
    bots = Bots(db)
    bot = await bots.get(bot_id, lock=True)
    if bot is None or not bot.enabled:
        return False
    await bots.save(replace(bot, enabled=False, disabled_reason=reason, updated_at=datetime.now(UTC)))
    fx.note(actor=SOURCE, action="bot.disabled", subject=bot_id, payload={"reason": reason})
    log.warning("bot %s disabled: %s", bot_id, reason)
    return True
