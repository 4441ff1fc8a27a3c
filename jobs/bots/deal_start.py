"""Starting a DCA deal when a bot's start conditions held (the daemon's deal engine asks:
daemon/deal_engine.py), within the bot's limits, exactly once per trigger.

Exactly once: the deal's id is derived from what triggered it (bot, pair and the closed bar's or
the signal's id; for ASAP bots the bot's count of deals started), and the bot's row is locked
while its limits are checked and the deal is recorded. A duplicated event, a re-run job or a
restarted daemon asking again finds the deal (or the limits reached) and starts nothing.

Limits, as 3Commas applies them (peers.md): the bot enabled and not deleted; max active deals,
deals per pair; cooldown (seconds since the pair's last deal closed); the pairs blacklist; the
price filters (min_price, max_price against the price the deal would start at); disable after N
deals (the bot is disabled when its Nth deal starts). A start that is refused says why in the
log (debug: it is asked again on the next bar or pass) and changes nothing.

The deal's bot settings are copied into the deal (deal_state.Deal.config): a later edit of the
bot applies to new deals only. The deal is saved, with its typed columns, before its base order
is placed (jobs/bots/deal_runner.py carries the intents out).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from jobs.bots.bot_publish import publish, publish_bots
from jobs.bots.deal_codec import new_record
from jobs.bots.deal_orders import SOURCE, carry_out
from jobs.bots.deal_runner import drive
from jobs.domain.dca.config import BotConfig, BotConfigError, parse_bot_config
from jobs.domain.dca.deal import start_deal
from jobs.domain.dca.deal_events import DealStarted
from jobs.domain.dca.deal_intents import CancelOrder, Note, PlaceOrder
from jobs.domain.instruments import UnknownInstrumentError, get_instrument
from jobs.effects import effect
from jobs.resources import Resources
from storage.repos import Db
from storage.repos.blacklist import PairsBlacklist
from storage.repos.bots import BotRecord, Bots
from storage.repos.deals import Deals
from storage.repos.ledger import Ledger
from storage.repos.signals import BotSignals

log = logging.getLogger("tradingd.deals")
ASAP = "asap"
RECENT_DEALS = 200  # how far back the cooldown looks for the pair's last deal


@dataclass(frozen=True, slots=True)
class StartOutcome:
    deal_id: str | None
    message: str


def deal_id_for(bot_id: str, pair: str, trigger: str) -> str:
    """Derived from the trigger, never random: the same trigger can only ever name one deal."""
    return "deal_" + hashlib.sha256(f"{bot_id}|{pair}|{trigger}".encode()).hexdigest()[:20]


async def start_bot_deal(res: Resources, bot_id: str, pair: str, trigger: str, *,
                         signal_id: str | None = None, manual: bool = False) -> StartOutcome:
    """Start one deal of `bot_id` on `pair` for `trigger` (a bar's or signal's id, or ASAP), if
    its limits allow; then place its base order."""
    now = datetime.now(UTC)
    async with effect(res) as (db, fx):
        bot = await Bots(db).get(bot_id, lock=True)
        why, config = await _refusal(res, db, bot, pair, now, manual=manual)
        if why is not None or bot is None or config is None:
            log.debug("bot %s: no deal on %s for %s: %s", bot_id, pair, trigger, why)
            return StartOutcome(None, why or "no such bot")
        key = f"{ASAP}:{bot.deals_started}" if trigger == ASAP else trigger
        deal_id = deal_id_for(bot.id, pair, key)
        if await Deals(db).get(deal_id) is not None:
            return StartOutcome(deal_id, f"deal {deal_id} was already started for {key}")
        quote = await res.reader.quote(pair)
        if quote is None or quote.too_old(now, res.settings.quote_stale_after_s):
            return StartOutcome(None, f"no fresh quote for {pair}: the deal starts on a later trigger")
        price = quote.ask if config.strategy == "long" else quote.bid
        if (config.min_price is not None and price < config.min_price) or (
                config.max_price is not None and price > config.max_price):
            return StartOutcome(None, f"{pair} at {price} is outside the bot's price filter "
                                      f"[{config.min_price}, {config.max_price}]")
        instrument = get_instrument(pair)
        balance = await _balance(db, bot.venue, instrument.quote, config)
        deal, intents = start_deal(DealStarted(deal_id, bot.id, price, now, balance), config, instrument)
        await Deals(db).create(new_record(deal, bot.venue))
        bot = await Bots(db).note_deal_started(bot.id)
        notes = [i.text for i in intents if isinstance(i, Note)]
        fx.note(actor=SOURCE, action="deal.started", subject=deal.id, payload={
            "bot_id": bot.id, "pair": pair, "trigger": key, "price": str(price), "status": deal.status.value,
            "notes": notes})
        if config.disable_after_deals is not None and bot.deals_started >= config.disable_after_deals:
            bot = await Bots(db).save(replace(bot, enabled=False, updated_at=now,
                                              disabled_reason=f"started its {bot.deals_started} deals "
                                                              "(disable_after_deals)"))
            fx.note(actor=SOURCE, action="bot.disabled", subject=bot.id,
                    payload={"reason": bot.disabled_reason})
        if signal_id is not None:
            await BotSignals(db).consume(signal_id, now)
    log.info("bot %s: deal %s started on %s at %s (%s)", bot_id, deal.id, pair, price, key)
    await publish_bots(res, [bot_id])
    actions = [i for i in intents if isinstance(i, PlaceOrder | CancelOrder)]
    answers = await carry_out(res, deal.id, actions)
    await drive(res, deal.id, answers)
    await publish(res, deals=[deal.id])  # drive publishes only what changed: a resting base order did not
    return StartOutcome(deal.id, f"deal {deal.id} started on {pair} at {price}")


async def _refusal(res: Resources, db: Db, bot: BotRecord | None, pair: str, now: datetime, *,
                   manual: bool) -> tuple[str | None, BotConfig | None]:
    """Why the bot may not start a deal on `pair` now (None: it may), and its parsed config."""
    if bot is None or bot.deleted:
        return "no such bot", None
    if not bot.enabled:
        return f"bot disabled ({bot.disabled_reason or 'not enabled'})", None
    try:
        config = parse_bot_config(bot.config)
        get_instrument(pair)
    except (BotConfigError, UnknownInstrumentError) as e:
        return f"the bot cannot run: {e}", None
    if pair not in config.pairs:
        return f"{pair} is not one of the bot's pairs", None
    if not manual and any(c.kind == "manual" for c in config.start_conditions):
        return "the bot starts deals only when asked", None
    deals = Deals(db)
    open_deals = await deals.open_of_bot(bot.id)
    if len(open_deals) >= config.max_active_deals:
        return f"max active deals reached ({config.max_active_deals})", None
    if sum(1 for d in open_deals if d.symbol == pair) >= config.deals_per_pair:
        return f"deals per pair reached on {pair} ({config.deals_per_pair})", None
    if config.cooldown_s:
        closed = [d.closed_at for d in await deals.of_bot(bot.id, limit=RECENT_DEALS)
                  if d.symbol == pair and d.closed_at is not None]
        if closed and (now - max(closed)).total_seconds() < config.cooldown_s:
            return f"cooldown: the last deal on {pair} closed at {max(closed).isoformat()}", None
    listed = await PairsBlacklist(db).listed(bot.venue, [pair])
    if listed:
        return f"{pair} is on the pairs blacklist of {bot.venue} ({listed[0].reason})", None
    return None, config


async def _balance(db: Db, venue: str, asset: str, config: BotConfig) -> Decimal | None:
    """The free quote balance when a volume is a percent of it (3Commas); None otherwise."""
    if "percent" not in (config.base_order.volume_type, config.safety_orders.volume_type):
        return None
    cash = await Ledger(db).balance(venue, asset)
    return cash.total - cash.locked if cash is not None else Decimal(0)
