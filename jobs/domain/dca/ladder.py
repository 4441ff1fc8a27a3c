"""The 3Commas DCA calculator in Decimal: a bot's orders at a given base price, on the instrument's
increments, with the capital they need and what the instrument or the balance cannot carry.

Formulas (3Commas: its DCA calculator, the API docs of martingale_volume_coefficient and
martingale_step_coefficient, the help center on take profit types and multiple targets; the same
formulas as open-source 3Commas simulators):
- deviation_n = step_percent * (1 + step_scale + ... + step_scale^(n-1)) % from the base order's
  price P0 (entries.py), or the custom step's deviation;
- price_n = P0 * (1 - deviation_n / 100) for a long (buys below), P0 * (1 + deviation_n / 100)
  for a short (sells above);
- volume_n = volume * volume_scale^(n-1): quote currency as given; base_currency: that many base
  units (quote volume = units * price_n); percent: that share of `balance` (quote currency);
- qty_n = volume_n / price_n, down to the lot; cost_n = qty_n * price_n;
- average entry through level n = sum(cost) / sum(qty) over the base order and safety orders 1..n;
- take profit at level n, each target (profit %, share of the position %):
  "total": average * (1 + profit / 100) (short: 1 - profit / 100);
  "base":  (sum(cost) + profit / 100 * cost_0) / sum(qty) (short: minus): the profit aimed for is a
  share of the base order's volume, whatever the safety orders added;
- stop loss at level n = average * (1 - percent / 100) (short: 1 + percent / 100);
- required capital per deal = the base order's volume + every safety order's volume (quote
  currency, before rounding: 3Commas's "max amount for bot usage" per deal), times max_active_deals
  for the bot; maximum price deviation covered = the last safety order's deviation.

Rounding, always to the instrument's increments and in the conservative direction: quantities
down to the lot (never more than configured, never more than the funds); prices a bot buys at
(a long's entries, a short's exits) down to the tick, prices it sells at (a short's entries, a
long's exits, a long's stop) up: an entry then sits at least the configured deviation away and a
take profit makes at least the configured profit. Averages are kept exact (not rounded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from itertools import pairwise

from jobs.domain.dca.config import BotConfig, BotConfigError
from jobs.domain.dca.entries import VolumeType
from jobs.domain.instruments import Instrument
from jobs.domain.orders import MAX_PRICE
from storage.values import plain_decimal as plain

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class TakeProfitTarget:
    profit_percent: Decimal
    price: Decimal  # on the tick: up for a long (a sell), down for a short (a buy)
    qty: Decimal  # on the lot; the last target of a 100 % split takes the rest of the position


@dataclass(frozen=True, slots=True)
class LadderLevel:
    """One order of the ladder and the deal's figures once it (and every one before it) filled."""

    index: int  # 0: the base order; n: safety order n
    deviation_percent: Decimal  # configured, from the base order's price (0 for the base order)
    price: Decimal  # on the tick, conservative (module docstring)
    volume: Decimal  # configured size in quote currency at `price`, before rounding the quantity
    qty: Decimal  # base units, down to the lot
    cost: Decimal  # qty * price: what the order actually spends (a short: receives)
    total_qty: Decimal  # through this level
    total_cost: Decimal
    average_price: Decimal  # total_cost / total_qty, exact
    take_profit: tuple[TakeProfitTarget, ...]  # where the targets sit once this level filled
    stop_loss_price: Decimal | None  # on the tick (a long's stop up, a short's down); None: no stop


@dataclass(frozen=True, slots=True)
class Ladder:
    """A bot's ladder at one base price. `problems` say what the instrument (or the balance given)
    cannot carry, each naming the field to change; `warnings` what runs but may surprise."""

    strategy: str
    symbol: str
    levels: tuple[LadderLevel, ...]  # the base order, then safety orders 1..n (fewer if a level failed)
    required_capital_per_deal: Decimal  # sum of the configured volumes (quote currency)
    max_active_deals: int
    max_deviation_percent: Decimal  # the last safety order's configured deviation (0 without any)
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def required_capital(self) -> Decimal:
        """What the bot needs with every deal open and every safety order filled."""
        return self.required_capital_per_deal * self.max_active_deals

    @property
    def cost_per_deal(self) -> Decimal:
        """What one deal spends once every level filled, after rounding quantities down."""
        return self.levels[-1].total_cost if self.levels else Decimal(0)

    @property
    def base_order(self) -> LadderLevel:
        return self.levels[0]

    @property
    def safety_orders(self) -> tuple[LadderLevel, ...]:
        return self.levels[1:]


def round_price(price: Decimal, tick: Decimal, *, buy: bool) -> Decimal:
    """To the tick: down for a price we buy at, up for one we sell at."""
    return (price / tick).quantize(Decimal(1), rounding=ROUND_DOWN if buy else ROUND_UP) * tick


def build_ladder(config: BotConfig, instrument: Instrument, base_price: Decimal, *,
                 balance: Decimal | None = None, available: Decimal | None = None) -> Ladder:
    """Every order of one deal of `config` on `instrument` starting at `base_price`.

    `balance` (quote currency) sizes percent volumes; `available` (quote currency; for a short,
    the quote value of the base asset held) adds a problem when the bot's required capital is more.
    """
    long = config.strategy == "long"
    problems: list[str] = []
    so = config.safety_orders
    deviations = [Decimal(0), *so.deviations()]
    fields = ["base_order", *(f"safety_orders.custom_steps[{i}]" if so.custom_steps else "safety_orders"
                              for i in range(so.count))]
    volume_types = [config.base_order.volume_type, *[so.volume_type] * so.count]
    raw_volumes = [config.base_order.volume, *so.volumes()]
    if not base_price.is_finite() or base_price <= 0:
        raise ValueError(f"base_price must be a positive price, got {base_price}")
    if "percent" in volume_types and (balance is None or balance <= 0):
        problems.append("base_order.volume_type / safety_orders.volume_type percent: sizes in % need the "
                        "available balance; give it, or use quote_currency volumes")
        balance = None
    levels: list[LadderLevel] = []
    required = Decimal(0)
    p0 = round_price(base_price, instrument.tick_size, buy=long)
    total_qty = total_cost = Decimal(0)
    for n, (deviation, raw, vtype, field) in enumerate(zip(deviations, raw_volumes, volume_types, fields,
                                                           strict=True)):
        what = "the base order" if n == 0 else f"safety order {n}"
        unrounded = p0 * (1 - deviation / HUNDRED) if long else p0 * (1 + deviation / HUNDRED)
        price = round_price(unrounded, instrument.tick_size, buy=long)
        problem = _price_problem(n, what, price, deviation, levels, instrument, long)
        if problem:
            problems.append(problem)
            break
        volume = _quote_volume(raw, vtype, price, balance)
        if volume is None:
            break
        required += volume
        qty = instrument.round_qty(raw if vtype == "base_currency" else volume / price)
        cost = qty * price
        problems.extend(_size_problems(field, what, qty, cost, price, instrument))
        if qty <= 0:
            break
        total_qty, total_cost = total_qty + qty, total_cost + cost
        average = total_cost / total_qty
        base_cost = levels[0].cost if levels else cost
        levels.append(LadderLevel(
            index=n, deviation_percent=deviation, price=price, volume=volume, qty=qty, cost=cost,
            total_qty=total_qty, total_cost=total_cost, average_price=average,
            take_profit=take_profit_targets(config, instrument, total_qty, total_cost, base_cost, long),
            stop_loss_price=stop_price(config, instrument, average, long)))
    if levels:
        problems.extend(_target_size_problems(levels[0], instrument, bool(config.take_profit.steps)))
    if available is not None and levels and len(levels) == len(deviations):
        need = required * config.max_active_deals
        if need > available:
            problems.append(
                f"base_order.volume / safety_orders.volume: the bot needs {plain(need)} {instrument.quote} "
                f"({plain(required)} a deal x {config.max_active_deals} deals) and {plain(available)} is "
                "available: "
                "lower the volumes, volume_scale, max_count or max_active_deals")
    return Ladder(strategy=config.strategy, symbol=instrument.symbol, levels=tuple(levels),
                  required_capital_per_deal=required, max_active_deals=config.max_active_deals,
                  max_deviation_percent=deviations[-1], problems=tuple(problems),
                  warnings=tuple([*config.warnings(), *_stop_warnings(config, levels, long)]))


def check_ladder(config: BotConfig, instrument: Instrument, base_price: Decimal, *,
                 balance: Decimal | None = None, available: Decimal | None = None) -> Ladder:
    """`build_ladder`, refused with BotConfigError (every problem) when it has any."""
    ladder = build_ladder(config, instrument, base_price, balance=balance, available=available)
    if ladder.problems:
        raise BotConfigError(list(ladder.problems))
    return ladder


def _price_problem(n: int, what: str, price: Decimal, deviation: Decimal, levels: Sequence[LadderLevel],
                   instrument: Instrument, long: bool) -> str | None:
    field = "base price" if n == 0 else "safety_orders.step_percent / step_scale / custom_steps"
    if price <= 0:
        return (f"{field}: {what} {deviation}% {'below' if long else 'above'} the base order rounds to a "
                f"price of {price} at the tick {instrument.tick_size}: use fewer or nearer safety orders")
    if price > MAX_PRICE:
        return (f"{field}: {what} would sit at {price:.6g} {instrument.quote}, above the largest price "
                f"{MAX_PRICE:f}: use fewer or nearer safety orders")
    if levels and price == levels[-1].price:
        previous = "the base order" if n == 1 else f"safety order {n - 1}"
        return (f"{field}: {what} at {deviation}% rounds to the same price {price} as {previous} at the tick "
                f"{instrument.tick_size} of {instrument.symbol}: make the steps wider")
    return None


def _quote_volume(raw: Decimal, vtype: VolumeType, price: Decimal, balance: Decimal | None) -> Decimal | None:
    if vtype == "quote_currency":
        return raw
    if vtype == "base_currency":
        return raw * price
    return None if balance is None else raw / HUNDRED * balance


def _size_problems(field: str, what: str, qty: Decimal, cost: Decimal, price: Decimal,
                   instrument: Instrument) -> list[str]:
    i = instrument
    if qty < i.min_qty or qty <= 0:
        return [f"{field}.volume: {what} at {plain(price)} {i.quote} buys {plain(qty)} {i.base} after "
                f"rounding to the lot {i.lot_size}, below the minimum {i.min_qty} {i.base} of {i.symbol}: "
                "raise the volume"]
    if cost < i.min_notional:
        return [f"{field}.volume: {what} is worth {plain(cost)} {i.quote} at {plain(price)}, below the "
                f"minimum order value {i.min_notional} {i.quote} of {i.symbol}: raise the volume"]
    return []


def take_profit_targets(config: BotConfig, instrument: Instrument, total_qty: Decimal, total_cost: Decimal,
                        base_cost: Decimal, long: bool) -> tuple[TakeProfitTarget, ...]:
    """The take-profit targets of a position of `total_qty` entered for `total_cost` (the base order
    cost `base_cost`), by the module docstring's formulas. Public because a running deal
    (jobs/domain/dca/deal.py) prices its targets from what actually filled, with these same rules."""
    tp = config.take_profit
    targets = tp.targets()
    complete = sum(share for _, share in targets) == HUNDRED
    out, left = [], total_qty
    for k, (profit, share) in enumerate(targets):
        sign = 1 if long else -1
        if tp.type == "total":
            price = total_cost / total_qty * (1 + sign * profit / HUNDRED)
        else:
            price = (total_cost + sign * profit / HUNDRED * base_cost) / total_qty
        last = complete and k == len(targets) - 1
        qty = left if last else instrument.round_qty(total_qty * share / HUNDRED)
        left -= qty
        out.append(TakeProfitTarget(profit, round_price(price, instrument.tick_size, buy=not long), qty))
    return tuple(out)


def stop_price(config: BotConfig, instrument: Instrument, average: Decimal, long: bool) -> Decimal | None:
    """The stop-loss price `config.stop_loss.percent` from `average` (None without a stop loss)."""
    if config.stop_loss is None:
        return None
    pct = config.stop_loss.percent / HUNDRED
    return round_price(average * (1 - pct if long else 1 + pct), instrument.tick_size, buy=not long)


def _target_size_problems(base: LadderLevel, instrument: Instrument, stepped: bool) -> list[str]:
    """Each take-profit target must be an order the venue takes once the base order alone filled."""
    i, out = instrument, []
    for k, t in enumerate(base.take_profit):
        if t.qty < i.min_qty or t.qty <= 0 or t.qty * t.price < i.min_notional:
            field = f"take_profit.steps[{k}].position_percent" if stepped else "base_order.volume"
            out.append(f"{field}: after the base order, take-profit target {k + 1} closes {plain(t.qty)} "
                       f"{i.base} (worth {plain(t.qty * t.price)} {i.quote}), below the minimum order "
                       f"({i.min_qty} {i.base}, {i.min_notional} {i.quote}): use fewer targets or a larger "
                       "base order")
    return out


def _stop_warnings(config: BotConfig, levels: Sequence[LadderLevel], long: bool) -> list[str]:
    """A stop that triggers before the last safety order can fill (3Commas allows it; we warn)."""
    sl = config.stop_loss
    if sl is None or len(levels) < 2:
        return []
    cut = [lv for prev, lv in pairwise(levels)
           if prev.stop_loss_price is not None
           and (prev.stop_loss_price >= lv.price if long else prev.stop_loss_price <= lv.price)]
    if not cut:
        return []
    needed = max(abs(1 - lv.price / prev.average_price) * HUNDRED for prev, lv in pairwise(levels))
    return [f"stop_loss.percent: the stop ({sl.percent}% from the average price) triggers before safety "
            f"orders {cut[0].index}-{levels[-1].index} can fill, so they are never used (3Commas allows "
            f"this: it caps the loss); give more than {needed:.4g}% to use the whole ladder"]
