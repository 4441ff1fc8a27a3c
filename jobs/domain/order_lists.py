"""Order lists (pure): OCO pairs and brackets, as legs, and what one leg's event does to the others.

Why here: the worker records one order per leg, the paper venue books and matches them, and
the rules of what cancels what must be one definition both follow.

* oco (one-cancels-other): `type=limit` with `limit_price` is the take-profit leg; a stop-loss
  leg on the same side and quantity is a stop at `stop_loss_price` (a stop-limit when
  `stop_loss_limit_price` is given). Both rest; when one fills, or the stop-limit leg triggers,
  the other is cancelled in the same venue transaction (Binance OCO, Alpaca order_class=oco).
* bracket: the order itself (market or limit) is the entry; a take-profit limit at
  `take_profit_price` and a stop-loss at `stop_loss_price` exit on the other side for the same
  quantity. The exit legs are "held" until the entry fills, then open as an OCO (Alpaca
  order_class=bracket). Cancelling any leg of a list cancels the whole list.

Each leg has its own client order id, derived from the command: the first leg's is the
command's own (`client_order_id_for(command_id)`), and it is the list's id; the others add the
leg's name (`client_order_id_for(f"{command_id}:{leg}")`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jobs.domain.orders import OrderSpec, client_order_id_for

ENTRY, TAKE_PROFIT, STOP_LOSS = "entry", "take_profit", "stop_loss"
LEG_ORDER = {ENTRY: 0, TAKE_PROFIT: 1, STOP_LOSS: 2}  # the order legs() gives them in


@dataclass(frozen=True, slots=True)
class Leg:
    name: str
    spec: OrderSpec  # a simple order
    held: bool  # waits for the entry to fill
    client_order_id: str


def legs(spec: OrderSpec, command_id: str) -> list[Leg]:
    """The list's orders, first the one whose client order id is the command's (normalized spec)."""
    simple = replace(spec, order_class="simple", take_profit_price=None, stop_loss_price=None,
                     stop_loss_limit_price=None)
    if spec.order_class == "simple":
        return [Leg("", simple, False, client_order_id_for(command_id))]
    exit_side = spec.side if spec.order_class == "oco" else ("sell" if spec.side == "buy" else "buy")
    tp_price = spec.limit_price if spec.order_class == "oco" else spec.take_profit_price
    tp = OrderSpec(spec.symbol, exit_side, "limit", spec.qty, None, tp_price, None, spec.time_in_force)
    sl = OrderSpec(spec.symbol, exit_side, "stop_limit" if spec.stop_loss_limit_price else "stop", spec.qty,
                   None, spec.stop_loss_limit_price, spec.stop_loss_price, spec.time_in_force)
    if spec.order_class == "oco":
        return [Leg(TAKE_PROFIT, tp, False, client_order_id_for(command_id)),
                Leg(STOP_LOSS, sl, False, client_order_id_for(f"{command_id}:{STOP_LOSS}"))]
    return [Leg(ENTRY, simple, False, client_order_id_for(command_id)),
            Leg(TAKE_PROFIT, tp, True, client_order_id_for(f"{command_id}:{TAKE_PROFIT}")),
            Leg(STOP_LOSS, sl, True, client_order_id_for(f"{command_id}:{STOP_LOSS}"))]


def sibling_after(event_leg: str | None, event: str, sibling_status: str) -> str | None:
    """The status another leg of the list takes when `event_leg` is "filled", "triggered" (a
    stop-limit leg) or "cancelled"; None: it stays as it is."""
    if sibling_status not in ("open", "held"):
        return None
    if event == "filled" and event_leg == ENTRY:
        return "open" if sibling_status == "held" else None
    if event in ("filled", "triggered", "cancelled"):
        return "cancelled"
    return None
