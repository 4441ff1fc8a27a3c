"""Whether a DCA bot's configuration can run here and now: every problem at once, each at its field.

BotConfig (jobs/domain/dca/config.py) refuses what the configuration alone shows (zeros, ladders
reaching 100 %, bad combinations). What needs the world is checked here, for every pair: the
instrument exists and routes to the same venue as the others, the pair is not blacklisted on
that venue, a quote prices the ladder (jobs/domain/dca/ladder.py: increments, minimum orders,
take-profit sizes) and the venue's available balance funds it. Run when a bot is created,
changed, cloned and enabled, so a bot that could never buy its ladder is refused rather than
left to fail deal after deal (peers.md: zeros and unfundable ladders refused, not looped on).

The result's `summary` is what the view shows of the ladder (get_bot_details): required capital,
maximum deviation covered and the first levels, priced at the quote used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from jobs.bots.inputs import SIGNAL_KINDS, parse_input
from jobs.domain.dca.config import BotConfig, BotConfigError
from jobs.domain.dca.ladder import Ladder, build_ladder
from jobs.domain.instruments import Instrument, UnknownInstrumentError, get_instrument
from jobs.resources import Resources
from storage.repos import Db
from storage.repos.blacklist import PairsBlacklist
from storage.repos.ledger import Ledger
from storage.values import plain_decimal as plain

LEVELS_SHOWN = 12  # the summary lists the base order and the first safety orders, then the last one
AVERAGE_DIGITS = Decimal("1e-8")  # the average entry is exact (a ratio); shown to 8 decimals


@dataclass(frozen=True, slots=True)
class CheckedBot:
    config: BotConfig
    venue: str
    summary: dict[str, Any]
    warnings: list[str]

    @property
    def takes_signals(self) -> bool:
        """Whether a start condition waits for a webhook signal (the bot then needs a secret)."""
        return any(c.kind in SIGNAL_KINDS for c in self.config.start_conditions)


async def check_bot(res: Resources, db: Db, data: dict[str, Any]) -> CheckedBot:
    """The configuration parsed and its ladder checked on every pair; BotConfigError with every
    problem ("field: what to change") otherwise."""
    config = parse_input(data)
    problems: list[str] = []
    instruments: list[Instrument] = []
    for pair in config.pairs:
        try:
            instruments.append(get_instrument(pair))
        except UnknownInstrumentError as e:
            problems.append(f"pairs: {e}")
    venues = {i.symbol: res.venue_for(i.symbol) for i in instruments}
    if len(set(venues.values())) > 1:
        problems.append("pairs: the pairs trade on different venues (" + ", ".join(
            f"{s} on {v}" for s, v in venues.items()) + "): make one bot per venue")
    venue = next(iter(venues.values()), res.default_venue)
    for entry in await PairsBlacklist(db).listed(venue, [i.symbol for i in instruments]):
        problems.append(f"pairs: {entry.symbol} is on the pairs blacklist of {venue} ({entry.reason}): "
                        "remove it from pairs, or update_pairs_blacklist(action='remove') first")
    ladders: dict[str, Ladder] = {}
    several = len(instruments) > 1
    for inst in instruments:
        ladder = await _ladder(res, db, config, inst, venue, problems)
        if ladder is None:
            continue
        ladders[inst.symbol] = ladder
        problems += [f"{inst.symbol} {p}" if several else p for p in ladder.problems]
    if problems:
        raise BotConfigError(list(dict.fromkeys(problems)))
    warnings = list(dict.fromkeys(w for ladder in ladders.values() for w in ladder.warnings))
    return CheckedBot(config, venue, _summary(config, ladders), warnings)


async def _ladder(res: Resources, db: Db, config: BotConfig, inst: Instrument, venue: str,
                  problems: list[str]) -> Ladder | None:
    """The pair's ladder at its quote (a long buys at the ask, a short sells at the bid), funded by
    the venue's available quote balance (a short: the base it holds, valued at the bid)."""
    quote = await res.reader.quote(inst.symbol)
    if quote is None:
        problems.append(f"pairs: no quote for {inst.symbol} yet, so its ladder cannot be priced: retry once "
                        "the market feed runs (get_quote shows it)")
        return None
    long = config.strategy == "long"
    price = quote.ask if long else quote.bid
    if price <= 0:
        problems.append(f"pairs: the quote of {inst.symbol} has no {'ask' if long else 'bid'} to price it")
        return None
    ledger = Ledger(db)
    cash = await ledger.balance(venue, inst.quote)
    cash_free = cash.total - cash.locked if cash is not None else Decimal(0)
    if long:
        available = cash_free
    else:
        held = await ledger.balance(venue, inst.base)
        available = (held.total - held.locked) * price if held is not None else Decimal(0)
    return build_ladder(config, inst, price, balance=cash_free, available=available)


def _summary(config: BotConfig, ladders: dict[str, Ladder]) -> dict[str, Any]:
    """What get_bot_details shows of the ladder (Decimals as plain strings)."""
    first = next(iter(ladders.values()))
    per_deal = max(ladder.required_capital_per_deal for ladder in ladders.values())
    return {
        "currency": config.quote_currency,
        "required_capital": plain(per_deal * config.max_active_deals),
        "required_capital_per_deal": plain(per_deal),
        "max_active_deals": config.max_active_deals,
        "max_deviation_percent": plain(first.max_deviation_percent),
        "safety_orders": len(first.safety_orders),
        "checked_at": datetime.now(UTC).isoformat(),
        "pairs": {symbol: _pair_summary(ladder) for symbol, ladder in ladders.items()},
    }


def _pair_summary(ladder: Ladder) -> dict[str, Any]:
    levels = ladder.levels
    shown = levels if len(levels) <= LEVELS_SHOWN else (*levels[:LEVELS_SHOWN - 1], levels[-1])
    return {
        "base_price": plain(ladder.base_order.price),
        "cost_per_deal": plain(ladder.cost_per_deal),
        # index (0: base order), deviation %, price, qty, average price and first take-profit price
        # once that level filled
        "levels": [[lv.index, plain(lv.deviation_percent), plain(lv.price), plain(lv.qty),
                    plain(lv.average_price.quantize(AVERAGE_DIGITS)), plain(lv.take_profit[0].price)]
                   for lv in shown],
        "levels_total": len(levels),
    }
