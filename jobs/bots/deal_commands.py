"""A user's actions on a running deal (panic sell, cancel, add a safety order, update its take
profit or maximum of safety orders), as commands routed to the deal engine.

Why inside the deal's turn (jobs/bots/deal_runner.py): the command's outcome is stored in the
same transaction as the deal it changed, under the deal's row lock, and the command is checked
there first; so a re-run (a worker killed after the commit, a redelivered job) finds it final
and applies nothing twice: a second manual safety order is never placed for one command.

A refused action changes nothing (the deal machine says why in a Note, jobs/domain/dca/
deal_actions.py) and ends the command "rejected" with that reason, so the tool can say what to
change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobs.bots.deal_runner import drive
from jobs.commands import AddSafetyOrder, CancelDeal, CommandResult, DealCommand, PanicSellDeal, UpdateDeal
from jobs.domain.dca import deal_events as ev
from jobs.domain.dca.deal import step
from jobs.domain.dca.deal_intents import Intent, Note
from jobs.domain.dca.deal_state import Deal
from jobs.domain.dca.exits import TakeProfit
from jobs.domain.instruments import Instrument
from jobs.effects import Effects, effect
from jobs.ledger import claim_command, finish_command
from jobs.orders import _result
from jobs.resources import Resources
from storage.repos import Db, read
from storage.repos.commands import Commands
from storage.repos.deals import Deals
from storage.values import FINAL_COMMAND_STATUSES, CommandStatus


class _Refused(ValueError):
    pass


def deal_event(cmd: DealCommand, price: Any, now: datetime) -> ev.UserAction:
    """The deal machine's event for the command; _Refused when its values cannot make one."""
    if isinstance(cmd, PanicSellDeal):
        return ev.PanicSell(now)
    if isinstance(cmd, CancelDeal):
        return ev.CancelDeal(now)
    if isinstance(cmd, AddSafetyOrder):
        at = cmd.price if cmd.order_type == "limit" else price
        if at is None:
            raise _Refused("add_safety_order: give price for a limit order (or order_type='market')")
        return ev.AddSafetyOrder(cmd.volume, at, now, limit=cmd.order_type == "limit")
    assert isinstance(cmd, UpdateDeal)
    if cmd.take_profit is not None:
        try:
            return ev.UpdateTakeProfit(TakeProfit.model_validate(cmd.take_profit), now)
        except ValueError as e:
            raise _Refused(f"take_profit: {e}") from None
    if cmd.max_safety_orders is not None:
        return ev.UpdateMaxSafetyOrders(cmd.max_safety_orders, now)
    raise _Refused("update_deal: give take_profit or max_safety_orders")


async def deal_command(res: Resources, cmd: DealCommand) -> CommandResult:
    async with effect(res) as (db, fx):
        row = await claim_command(db, cmd)
        if row.status in FINAL_COMMAND_STATUSES:
            fx.command = row
    if row.status in FINAL_COMMAND_STATUSES:
        return _result(row)
    price = None
    if isinstance(cmd, AddSafetyOrder) and cmd.order_type == "market":
        price = await _last_price(res, cmd.deal_id)
    said: list[str] = []
    events: list[ev.UserAction] = []
    if isinstance(cmd, UpdateDeal) and cmd.take_profit is not None and cmd.max_safety_orders is not None:
        events.append(ev.UpdateMaxSafetyOrders(cmd.max_safety_orders, datetime.now(UTC)))
    done: dict[str, Any] = {}

    async def act(db: Db, deal: Deal, instrument: Instrument) -> tuple[Deal, list[Intent]]:
        if (await Commands(db).get(cmd.command_id)).status in FINAL_COMMAND_STATUSES:
            done["already"] = True  # another run of this command finished while this one waited
            return deal, []
        out: list[Intent] = []
        start = deal
        try:
            for e in [deal_event(cmd, price, datetime.now(UTC)), *events]:
                deal, more = step(deal, e, instrument)
                out += more
        except _Refused as e:
            said.append(str(e))
            return deal, []
        said.extend(i.text for i in out if isinstance(i, Note))
        done["changed"] = deal != start
        return deal, out

    async def within(db: Db, fx: Effects, before: Deal | None, after: Deal | None, notes: list[str]) -> None:
        if done.get("already"):
            return
        if after is None or before is None:
            await finish_command(db, fx, cmd.command_id, "rejected",
                                 f"no deal {cmd.deal_id!r}; get_bot_deals shows the ids")
            return
        message = "; ".join(said) or "done"
        status: CommandStatus = "succeeded" if done.get("changed") else "rejected"
        await finish_command(db, fx, cmd.command_id, status, message, deal_id=after.id,
                             deal_status=after.status.value)

    await drive(res, cmd.deal_id, within=within, then=act)
    async with read(res.db) as db:
        return _result(await Commands(db).get(cmd.command_id))


async def _last_price(res: Resources, deal_id: str) -> Any:
    async with read(res.db) as db:
        record = await Deals(db).get(deal_id)
    if record is None:
        return None
    quote = await res.reader.quote(record.symbol)
    if quote is None:
        return None
    return quote.ask if record.side == "long" else quote.bid
