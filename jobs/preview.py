"""Order previews and their single-use confirmation tokens (pure logic + Redis, no SQL).

A preview values an order from the live quote in the state view the way its venue would fill it
(the venue's own pricing: far side of the book, slippage, fee; jobs/venues/registry.py), runs
the same pre-trade risk check the worker runs, and stores the result in Redis for PREVIEW_TTL_S
seconds under a random id. That id is the token `place_order` must present: it is bound to the
exact (normalized) order, it is burned on first use whatever the outcome, and the order's
command id is derived from it, so a retried placement can never place twice.

This module is also the bridge's door to the domain rules (instrument lookup, order and schedule
validation): the MCP bridge imports it instead of `jobs.domain`, keeping the bridge thin.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import BaseModel
from redis.asyncio import Redis

from jobs.commands import OrderFields
from jobs.domain.instruments import Instrument, UnknownInstrumentError, all_instruments, get_instrument
from jobs.domain.orders import (
    MAX_DECIMALS,
    MAX_NOTIONAL,
    MAX_PRICE,
    OrderSpec,
    OrderSpecError,
    check_amount,
    normalize_order,
)
from jobs.domain.risk import RiskLimits, check_order
from jobs.domain.schedule_clock import ScheduleSpecError, validate_spec
from jobs.venues.registry import default_venue, pricing_for, symbols_by_venue, venue_for_symbol
from storage.figures import Balance, Fee, Figures, Money, Price, Qty, show
from storage.settings import Settings
from storage.state import keys
from storage.state.reader import StateReader
from storage.values import Amount, OrderType, Quote, Side, TimeInForce

FEE_QUANTUM = Decimal("0.00000001")
PREVIEW_ID_RE = re.compile(r"^pv_[A-Za-z0-9_-]{16,64}$")


class PreviewRefused(Exception):
    """A preview token cannot be used; the message says why and what to do next."""


class InputRejected(ValueError):
    """Order or schedule input that cannot be accepted; the message says what to change."""


# --- the domain rules the bridge needs, re-exposed with one exception type

def account_venue() -> str:
    """The venue whose account the tools show (the venue registry's default)."""
    return default_venue()


def followed_symbols(settings: Settings) -> dict[str, list[str]]:
    """Every symbol the daemon's feeds serve, by venue (what health judges; the venue registry's)."""
    return symbols_by_venue(settings)


def known_symbols() -> list[str]:
    return sorted(i.symbol for i in all_instruments())


def resolve_symbol(symbol: str) -> str:
    """The canonical symbol (BTC/USDT for btcusdt, BTC-USDT...), or InputRejected naming the known ones."""
    try:
        return get_instrument(symbol).symbol
    except UnknownInstrumentError as e:
        raise InputRejected(str(e)) from None


def normalized_order(order: OrderFields | OrderSpec) -> tuple[Instrument, OrderSpec]:
    """Validate the order and round it to the instrument's increments (as the worker will)."""
    spec = order.spec() if isinstance(order, OrderFields) else order
    try:
        inst = get_instrument(spec.symbol)
        return inst, normalize_order(spec, inst)
    except (UnknownInstrumentError, OrderSpecError) as e:
        raise InputRejected(str(e)) from None


def check_schedule_input(symbol: str | None, quote_amount: Decimal | None, cron: str | None,
                         interval_s: int | None, *, timing_required: bool = True,
                         max_price: Decimal | None = None) -> str | None:
    """Validate DCA schedule input before it is queued. Returns the canonical symbol (if given).

    Everything the worker would refuse or could not store is refused here, before the command is
    acknowledged: amounts beyond the ledger's NUMERIC(38, 18), crons that never fire.
    """
    canonical = resolve_symbol(symbol) if symbol is not None else None
    try:
        if quote_amount is not None:
            check_amount("quote_amount", quote_amount, MAX_NOTIONAL, max_decimals=MAX_DECIMALS)
        if max_price is not None:
            check_amount("max_price", max_price, MAX_PRICE, max_decimals=MAX_DECIMALS)
    except OrderSpecError as e:
        raise InputRejected(str(e)) from None
    if timing_required or cron is not None or interval_s is not None:
        try:
            validate_spec(cron, interval_s)
        except ScheduleSpecError as e:
            raise InputRejected(str(e)) from None
    if canonical is not None and quote_amount is not None:
        inst = get_instrument(canonical)
        if quote_amount < inst.min_notional:
            raise InputRejected(f"quote_amount {quote_amount} is below the minimum order value "
                                f"{inst.min_notional} {inst.quote}")
    return canonical


def default_dca_name(quote_amount: Decimal, symbol: str) -> str:
    """'DCA 100.00 USDT into BTC/USDT': the amount as money, never '1000000000.0' or '1E+3'."""
    inst = get_instrument(symbol)
    return f"DCA {show(quote_amount, 'money', symbol=inst.symbol)} {inst.quote} into {inst.symbol}"


def order_command_id(preview_id: str) -> str:
    """The command id of the order a preview token places: one token, at most one order."""
    return f"order:{preview_id}"


# --- preview

class PreviewOrder(Figures):
    """The order exactly as it will be placed (rounded to the instrument's increments)."""

    symbol: str
    side: Side
    type: OrderType
    qty: Qty | None
    notional: Money | None
    limit_price: Price | None
    stop_price: Price | None
    time_in_force: TimeInForce
    trail_amount: Price | None = None
    trail_percent: Amount | None = None
    order_class: Literal["simple", "oco", "bracket"] = "simple"
    take_profit_price: Price | None = None  # bracket: the take-profit leg (oco: limit_price)
    stop_loss_price: Price | None = None  # oco and bracket: the stop-loss leg's stop
    stop_loss_limit_price: Price | None = None  # ... and its limit (a stop-limit leg)


class QuoteUsed(Figures):  # shown at the tick of the preview's symbol
    bid: Price
    ask: Price
    ts: datetime
    age_s: float
    stale: bool


class BalanceChange(Figures):
    asset: str
    available_before: Balance
    available_after: Balance


class RiskCheck(BaseModel):
    allowed: bool
    reasons: list[str]


class PreviewResult(Figures):
    """Figures are shown at the instrument's increments and the currency's precision
    (storage/figures.py); the fee with up to 8 decimals, so cost = value + fee to the cent."""

    token: str
    expires_at: datetime
    expires_in_s: int
    order: PreviewOrder
    quote: QuoteUsed
    execution: Literal["fills_now", "rests", "waits_for_stop"]
    estimated_price: Price
    estimated_qty: Qty
    estimated_value: Money
    estimated_fee: Fee
    estimated_cost: Money | None  # buys: value + fee, in the quote currency
    estimated_proceeds: Money | None  # sells: value - fee
    fee_bps: Amount
    slippage_bps: Amount
    balances_after: list[BalanceChange]
    risk: RiskCheck
    next_step: str
    replaces: str | None = None  # a replacement's preview (preview_replace): the order it replaces

    def figure_symbol(self) -> str | None:
        return self.order.symbol


def _dec(s: str | None) -> Decimal | None:
    return None if s is None else Decimal(s)


async def make_preview(reader: StateReader, redis: Redis, settings: Settings,
                       spec_input: OrderFields | OrderSpec, *, replaces: str | None = None,
                       released: tuple[str, Decimal] | None = None) -> PreviewResult:
    """Value and risk-check an order and store a single-use token for it (valid PREVIEW_TTL_S s).

    A replacement's preview (`replaces`: the order's id) counts the funds the order holds
    (`released`: asset, amount) as free, since the venue cancels it in the same step, and its
    token is good only for replace_order on that order.

    Raises InputRejected for an order that cannot be placed as given, PreviewRefused when there
    is no quote to value it from. A preview the risk check denies is still returned (and stored,
    so a place_order with its token explains the denial).
    """
    inst, spec = normalized_order(spec_input)
    view = await reader.order_inputs(inst.symbol)  # quote, balances, trading state: one round trip
    if view is None:
        raise PreviewRefused(f"feed has not delivered a quote for {inst.symbol} yet; retry in a few seconds")
    quote = view.quote
    now = datetime.now(UTC)
    age = quote.age_s(now)
    stale = quote.too_old(now, settings.quote_stale_after_s)

    venue = venue_for_symbol(inst.symbol, settings)  # the worker's routing, so the balances agree
    pricing = pricing_for(settings, venue)
    price, execution = pricing.estimate(spec, inst, Quote(quote.symbol, quote.bid, quote.ask, quote.bid_size,
                                                          quote.ask_size, quote.ts, quote.last))
    fee_rate = pricing.fee_rate
    qty = spec.qty if spec.qty is not None else inst.round_qty((spec.notional or Decimal(0)) / price)
    value = qty * price
    fee = (value * fee_rate).quantize(FEE_QUANTUM)

    balances = {b.asset: b for b in view.balances if b.venue == venue}

    def available(asset: str) -> Decimal:
        b = balances.get(asset)
        freed = released[1] if released is not None and released[0] == asset else Decimal(0)
        return freed if b is None else b.total - b.locked + freed

    avail_quote, avail_base = available(inst.quote), available(inst.base)
    trading = view.trading
    # the same reference price the worker's risk check uses, so the verdicts agree
    ref = None if quote.stale else (quote.ask if spec.side == "buy" else quote.bid)
    limits = RiskLimits(settings.max_order_notional, frozenset(settings.symbol_allowlist),
                        settings.enforce_market_hours)
    verdict = check_order(spec, inst, trading_state=trading.state, limits=limits, reference_price=ref,
                          available_quote=avail_quote, available_base=avail_base, fee_rate=fee_rate, now=now)
    reasons = list(verdict.reasons)
    if stale:
        reasons.append(f"the last quote for {inst.symbol} is {age:.1f} s old (stale after "
                       f"{settings.quote_stale_after_s:g} s): the venue would reject the order; wait a few "
                       f"seconds for the feed and call preview_order again")
    allowed = not reasons

    if spec.side == "buy":
        cost: Decimal | None = value + fee
        proceeds: Decimal | None = None
        bought = qty if execution == "fills_now" else Decimal(0)
        after = [BalanceChange(asset=inst.quote, available_before=avail_quote,
                               available_after=avail_quote - value - fee),
                 BalanceChange(asset=inst.base, available_before=avail_base,
                               available_after=avail_base + bought)]
    else:
        cost, proceeds = None, value - fee
        received = value - fee if execution == "fills_now" else Decimal(0)
        after = [BalanceChange(asset=inst.base, available_before=avail_base,
                               available_after=avail_base - qty),
                 BalanceChange(asset=inst.quote, available_before=avail_quote,
                               available_after=avail_quote + received)]

    preview_id = "pv_" + secrets.token_urlsafe(16)
    expires_at = now + timedelta(seconds=keys.PREVIEW_TTL_S)
    canonical = spec.canonical()
    stored = {"preview_id": preview_id, "order": canonical, "allowed": allowed, "reasons": reasons,
              "created_at": now.isoformat(), "expires_at": expires_at.isoformat()}
    if replaces is not None:
        stored["replaces"] = replaces
    await redis.set(keys.preview(preview_id), orjson.dumps(stored), ex=keys.PREVIEW_TTL_S)

    if allowed:
        next_step = (f"show the user these figures; to execute, call place_order with token={preview_id} and "
                     f"exactly the same order fields within {keys.PREVIEW_TTL_S} s")
    else:
        next_step = ("the order would be refused: change it as the risk reasons say and call "
                     "preview_order again")
    if replaces is not None and allowed:
        next_step = (f"show the user these figures; to execute, call replace_order with token={preview_id}, "
                     f"order_id={replaces} and exactly the same changes within {keys.PREVIEW_TTL_S} s")
    return PreviewResult(
        token=preview_id, expires_at=expires_at, expires_in_s=keys.PREVIEW_TTL_S, replaces=replaces,
        order=PreviewOrder(symbol=spec.symbol, side=spec.side, type=spec.type, qty=_dec(canonical["qty"]),
                           notional=_dec(canonical["notional"]), limit_price=_dec(canonical["limit_price"]),
                           stop_price=_dec(canonical["stop_price"]), time_in_force=spec.time_in_force,
                           trail_amount=_dec(canonical["trail_amount"]),
                           trail_percent=_dec(canonical["trail_percent"]), order_class=spec.order_class,
                           take_profit_price=_dec(canonical["take_profit_price"]),
                           stop_loss_price=_dec(canonical["stop_loss_price"]),
                           stop_loss_limit_price=_dec(canonical["stop_loss_limit_price"])),
        quote=QuoteUsed(bid=quote.bid, ask=quote.ask, ts=quote.ts, age_s=round(age, 3), stale=stale),
        execution=execution,  # type: ignore[arg-type]
        estimated_price=price, estimated_qty=qty, estimated_value=value, estimated_fee=fee,
        estimated_cost=cost, estimated_proceeds=proceeds, fee_bps=pricing.fee_bps,
        slippage_bps=pricing.slippage_bps, balances_after=after,
        risk=RiskCheck(allowed=allowed, reasons=reasons), next_step=next_step,
    )


# --- consuming a token

# GETDEL and the "used" marker in one step: a concurrent second use sees the marker, never the preview.
_CONSUME = """
local v = redis.call('GETDEL', KEYS[1])
if v then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2]) end
return v
"""


def _differences(stored: dict[str, Any], given: dict[str, Any]) -> list[str]:
    return [f"{k}: preview {stored.get(k)}, now {given.get(k)}"
            for k in given if stored.get(k) != given.get(k)]


def _wrong_use(previewed: str | None, given: str | None) -> str:
    """Why a token of a new order cannot replace one, and the other way round."""
    if previewed is None:
        return ("this token previews a new order (place_order); to replace an order call preview_replace; "
                "this token is now used up")
    if given is None:
        return (f"this token previews replacing order {previewed}: use it with replace_order; "
                "this token is now used up")
    return f"this token previews replacing order {previewed}, not {given}; this token is now used up"


async def _refuse(redis: Redis, preview_id: str, command_id: str, reason: str) -> PreviewRefused:
    marker = {"command_id": command_id, "outcome": "refused", "reason": reason}
    await redis.set(keys.preview_used(preview_id), orjson.dumps(marker), ex=keys.PREVIEW_USED_TTL_S)
    return PreviewRefused(reason)


async def consume_preview(redis: Redis, token: str, spec: OrderFields | OrderSpec, *,
                          replaces: str | None = None) -> tuple[str, OrderSpec]:
    """Burn the token and return the command id to place `spec` with, and `spec` normalized as it
    was compared with the preview; PreviewRefused otherwise.

    The token is single use: whatever the outcome (placed, or refused because the order differs
    from the preview or the preview was denied), it cannot be used again.
    """
    if not PREVIEW_ID_RE.match(token):
        raise PreviewRefused("unknown or expired token (tokens live 30 s): call preview_order again")
    command_id = order_command_id(token)
    marker = {"command_id": command_id, "outcome": "placed", "reason": None}
    raw = await redis.eval(_CONSUME, 2, keys.preview(token), keys.preview_used(token),  # type: ignore[misc]
                           orjson.dumps(marker).decode(), str(keys.PREVIEW_USED_TTL_S))
    if raw is None:
        used = await redis.get(keys.preview_used(token))
        if used is None:
            raise PreviewRefused(
                f"unknown or expired token (tokens live {keys.PREVIEW_TTL_S} s): call preview_order again")
        info = orjson.loads(used)
        if info.get("outcome") == "refused":
            raise PreviewRefused(f"token already used up by a refused place_order ({info.get('reason')}); "
                                 f"call preview_order again")
        raise PreviewRefused(f"token already used for command {info['command_id']} "
                             f"(see get_command_status(command_id={info['command_id']!r}))")
    stored = orjson.loads(raw)
    try:
        _, normalized = normalized_order(spec)
    except InputRejected as e:
        raise await _refuse(redis, token, command_id,
                            f"the order differs from the preview: {e}; this token is now used up, "
                            f"call preview_order again") from None
    if stored.get("replaces") != replaces:
        raise await _refuse(redis, token, command_id, _wrong_use(stored.get("replaces"), replaces))
    diffs = _differences(stored["order"], normalized.canonical())
    if diffs:
        raise await _refuse(redis, token, command_id,
                            f"the order differs from the preview in {'; '.join(diffs)}; this token is now "
                            f"used up, call preview_order again with the order you want")
    if not stored.get("allowed", False):
        raise await _refuse(redis, token, command_id,
                            "the preview was denied by the risk check: "
                            + "; ".join(stored.get("reasons") or [])
                            + "; change the order and call preview_order again")
    return command_id, normalized
