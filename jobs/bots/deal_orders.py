"""Carrying out a deal's intents through the normal order path (jobs/orders.py).

A PlaceOrder becomes a place_order command whose id IS the intent's client order id
("{deal}:{step}:{attempt}"), so the command, its order row (with orders.deal_id) and the venue's
client order id (derived from the command id) are one per ladder step and attempt: carrying an
intent out again (a re-run job, a reconcile) re-runs the same command, which finds its order
instead of sending a second one (jobs/orders.py place_order). The order goes through the same
rounding and risk check as any other; a refusal before an order was recorded is answered to the
deal as OrderRejected (jobs/bots/deal_feed.py reads it from the command as well).

A CancelOrder cancels the order its command placed. An order never recorded (its placement was
lost or refused) is answered OrderCancelled at once: the deal machine waits for every cancel's
answer before it replaces the order. Each cancel attempt is its own command (cancels are
idempotent at the venue and a lost one is asked again by reconciliation).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from jobs.commands import CancelOrder as CancelCommand
from jobs.commands import PlaceOrder as PlaceCommand
from jobs.domain.dca.deal_events import OrderCancelled, OrderRejected
from jobs.domain.dca.deal_intents import CancelOrder, Intent, PlaceOrder
from jobs.orders import cancel_order, place_order
from jobs.resources import Resources
from storage.repos import read
from storage.repos.orders import Orders
from storage.values import FINAL_ORDER_STATUSES

log = logging.getLogger("tradingd.deals")
SOURCE = "deal_engine"  # the commands' source and the audit entries' actor


def place_command(deal_id: str, i: PlaceOrder) -> PlaceCommand:
    return PlaceCommand(command_id=i.client_order_id, source=SOURCE, symbol=i.symbol, side=i.side,
                        type=i.kind, qty=i.qty, limit_price=i.price, time_in_force="gtc", deal_id=deal_id)


async def carry_out(res: Resources, deal_id: str,
                    intents: Sequence[Intent]) -> list[OrderRejected | OrderCancelled]:
    """Place and cancel as the deal asked (in its order); the answers the deal must hear now."""
    answers: list[OrderRejected | OrderCancelled] = []
    for i in intents:
        if isinstance(i, PlaceOrder):
            result = await place_order(res, place_command(deal_id, i))
            if result.status in ("rejected", "failed") and result.order_id is None:
                answers.append(OrderRejected(i.client_order_id, result.message, datetime.now(UTC)))
            log.info("deal %s: %s %s %s %s @ %s: %s %s", deal_id, i.client_order_id, i.side, i.kind, i.qty,
                     i.price, result.status, result.message)
        elif isinstance(i, CancelOrder):
            async with read(res.db) as db:
                order = await Orders(db).of_command(i.client_order_id)
            if order is None:
                answers.append(OrderCancelled(i.client_order_id, datetime.now(UTC)))
                continue
            if order.status in FINAL_ORDER_STATUSES:
                continue  # its end is in the ledger: the deal reads it there (deal_feed.py)
            cmd = CancelCommand(command_id=f"{i.client_order_id}:cancel:{uuid.uuid4().hex[:8]}",
                                source=SOURCE, order_id=order.id)
            result = await cancel_order(res, cmd)
            log.info("deal %s: cancel %s: %s %s", deal_id, i.client_order_id, result.status, result.message)
    return answers
