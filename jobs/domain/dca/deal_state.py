"""The record of one DCA deal: what it bought and sold, which orders it holds, where it stands.

A `Deal` is a frozen value: jobs/domain/dca/deal.py's `step` takes one and an event and returns
the next one with the orders to place or cancel. Everything a restarted process needs to carry on
is in it (stored as is by the live engine, kept in memory by the backtest).

Figures follow 3Commas's deal fields: bought qty and cost (bought_amount, bought_volume), sold qty
and value, the average entry price, fees, realized profit in quote and in % of what the entries
cost. A short's entries are its sells: its entry figures are the sold ones and its exits buy back.

The one invariant the record enforces by construction: `orders` holds at most ONE order per step
("bo", "so3", "tp1", "exit", "add2"): a step's next order is placed only once the venue said its
previous one ended (filled, cancelled, rejected), so no deal ever holds two orders for one ladder
step, even while a take profit is being replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from jobs.domain.dca.config import BotConfig
from jobs.domain.dca.ladder import Ladder
from storage.values import Side

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class DealStatus(StrEnum):
    """3Commas's deal status values (its API's `status`), those this engine reaches."""

    BASE_ORDER_PLACED = "base_order_placed"  # the base order is on the venue, not (fully) filled
    BOUGHT = "bought"  # active: safety orders and take profit resting
    TTP_ACTIVATED = "ttp_activated"  # the price reached the trailing take profit: following the peak
    TTP_ORDER_PLACED = "ttp_order_placed"  # the price fell back by the trailing deviation: selling
    STOP_LOSS_PENDING = "stop_loss_pending"  # the stop triggered: cancelling, then selling at market
    PANIC_SELL_PENDING = "panic_sell_pending"
    CANCEL_PENDING = "cancel_pending"
    COMPLETED = "completed"  # closed by take profit
    STOP_LOSS_FINISHED = "stop_loss_finished"
    PANIC_SOLD = "panic_sold"
    CANCELLED = "cancelled"  # resting orders cancelled, the position left on the balance
    FAILED = "failed"  # the venue refused the base order, or an exit could not be placed


FINAL_STATUSES = frozenset({DealStatus.COMPLETED, DealStatus.STOP_LOSS_FINISHED, DealStatus.PANIC_SOLD,
                            DealStatus.CANCELLED, DealStatus.FAILED})

# Why a deal is closing; decides its last status (deal_plan.py `_FINAL`).
ExitReason = Literal["take_profit", "trailing", "stop_loss", "panic", "cancel", "failed"]
Role = Literal["base", "safety", "take_profit", "stop_loss", "panic"]
OrderKind = Literal["market", "limit"]


@dataclass(frozen=True, slots=True)
class DealOrder:
    """An order the deal placed and the venue has not ended yet (as far as the deal knows).

    `cancelling` is set once the deal asked to cancel it: the step stays taken until the venue
    confirms, so its replacement can never rest beside it."""

    client_order_id: str  # f"{deal_id}:{step}:{attempt}" (deal.py `client_order_id`)
    step: str
    role: Role
    side: Side
    kind: OrderKind
    qty: Decimal
    price: Decimal | None  # None for a market order
    filled_qty: Decimal = ZERO
    cancelling: bool = False

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty


@dataclass(frozen=True, slots=True)
class Deal:
    """One deal of one bot on one pair (module docstring). Built by `deal.step` only."""

    id: str
    bot_id: str
    pair: str
    config: BotConfig  # the bot's settings when the deal started, with this deal's own updates
    ladder: Ladder  # built at `base_price`: the safety orders' prices and quantities
    base_price: Decimal  # the base order's average fill price once filled (before: the start price)
    balance: Decimal | None  # what percent volumes were sized on (None: quote volumes)
    status: DealStatus
    created_at: datetime
    updated_at: datetime
    closing: ExitReason | None = None
    closed_at: datetime | None = None
    max_safety_orders: int = 0  # how many of the ladder's safety orders this deal may use
    orders: tuple[DealOrder, ...] = ()  # at most one per step
    placed: dict[str, int] = field(default_factory=dict)  # step -> orders placed for it so far
    given_up: frozenset[str] = frozenset()  # steps the venue refused: never placed again
    unasked_ends: dict[str, int] = field(default_factory=dict)  # step -> orders the venue ended itself
    level_filled: dict[int, Decimal] = field(default_factory=dict)  # ladder level -> qty filled
    target_filled: dict[int, Decimal] = field(default_factory=dict)  # take-profit target -> qty
    targets_done: frozenset[int] = frozenset()
    bought_qty: Decimal = ZERO
    bought_cost: Decimal = ZERO
    sold_qty: Decimal = ZERO
    sold_value: Decimal = ZERO
    fees: Decimal = ZERO  # quote currency, every fill's
    base_cost: Decimal = ZERO  # what the base order's fills cost: the "base" take-profit type's basis
    ttp_peak: Decimal | None = None  # trailing take profit armed: the best price since (long: highest)
    sl_extreme: Decimal | None = None  # trailing stop: best price since the last entry fill
    sl_breakeven: bool = False  # the stop moved to the average entry (after the first target)
    sl_breach_since: datetime | None = None  # the stop's timeout: past the stop since then
    fill_ids: frozenset[str] = frozenset()  # every fill applied: a repeated one changes nothing

    @property
    def long(self) -> bool:
        return self.config.strategy == "long"

    @property
    def side(self) -> str:
        return self.config.strategy

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def entry_qty(self) -> Decimal:
        return self.bought_qty if self.long else self.sold_qty

    @property
    def entry_cost(self) -> Decimal:
        """What the entries cost (a short: what its sells received)."""
        return self.bought_cost if self.long else self.sold_value

    @property
    def exit_qty(self) -> Decimal:
        return self.sold_qty if self.long else self.bought_qty

    @property
    def exit_value(self) -> Decimal:
        return self.sold_value if self.long else self.bought_cost

    @property
    def position(self) -> Decimal:
        """Base units held by the deal (a short: owed), never negative while the books are sane."""
        return self.entry_qty - self.exit_qty

    @property
    def average_entry(self) -> Decimal | None:
        """Exact average entry price (fees not included, as exchanges show it); None before a fill."""
        return self.entry_cost / self.entry_qty if self.entry_qty else None

    @property
    def realized_profit(self) -> Decimal:
        """Quote currency, net of every fee: what the closed part made against the average entry.
        Once flat this is sold value - bought cost - fees, for a long and a short alike."""
        avg = self.average_entry
        if avg is None:
            return -self.fees
        gross = self.exit_value - avg * self.exit_qty
        return (gross if self.long else -gross) - self.fees

    @property
    def profit_percent(self) -> Decimal:
        """Realized profit in % of what the entries cost (3Commas final_profit_percentage)."""
        return self.realized_profit / self.entry_cost * HUNDRED if self.entry_cost else ZERO

    @property
    def filled_levels(self) -> tuple[int, ...]:
        """Ladder levels (0: the base order, n: safety order n) filled in full."""
        return tuple(lv.index for lv in self.ladder.levels
                     if self.level_filled.get(lv.index, ZERO) >= lv.qty)

    @property
    def completed_safety_orders(self) -> int:
        return sum(1 for n in self.filled_levels if n > 0)

    def order(self, client_order_id: str) -> DealOrder | None:
        return next((o for o in self.orders if o.client_order_id == client_order_id), None)

    def order_at(self, step: str) -> DealOrder | None:
        return next((o for o in self.orders if o.step == step), None)
