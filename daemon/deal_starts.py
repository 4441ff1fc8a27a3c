"""Start conditions of the enabled DCA bots, per bot and pair, in the daemon (the deal engine's
half that decides WHEN; the worker's deal_start_job decides WHETHER the bot's limits allow it:
jobs/bots/deal_start.py).

Each enabled bot gets one `StartConditions` per pair (jobs/domain/dca/conditions.py), built from
its stored configuration, seeded from the bars Postgres holds (as many closed bars of each
timeframe as its indicators need, so an RSI bot can trigger on its first live bar), then fed
every closed bar of the pair from the bus and every signal the webhook stored. A verdict that
holds becomes a `Trigger` named after what caused it (the bar, or the signal), which keys the
start job: the same bar or signal can never start two deals. An event condition (a cross, a
signal) is spent once its start is asked for; a level (RSI below 30) keeps asking on every
bar while it holds, and the worker's limits say no while the slots are full (3Commas).

A bot is rebuilt only when its configuration or enabled flag changes (its row's version also
moves with every deal it starts, which must not reset its indicators).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson

from jobs.domain.dca.conditions import DEFAULT_SIGNAL_VALID_FOR, StartConditions
from jobs.domain.dca.config import BotConfig, BotConfigError, parse_bot_config
from jobs.domain.dca.signals import SigningMode, VerifiedSignal
from storage.bars import BarRepository
from storage.repos.bots import BotRecord
from storage.repos.signals import SignalRecord
from storage.values import Bar

log = logging.getLogger("tradingd.deals")
ASAP = "asap"


@dataclass(frozen=True, slots=True)
class Trigger:
    bot_id: str
    pair: str
    key: str  # what caused it: "bar:<tf>:<open time>", "signal:<id>", or ASAP
    signal_id: str | None = None


@dataclass
class _BotConditions:
    fingerprint: bytes
    config: BotConfig
    venue: str
    pairs: dict[str, StartConditions]

    @property
    def asap(self) -> bool:
        return all(c.kind == "asap" for c in self.config.start_conditions)

    @property
    def takes_signals(self) -> bool:
        return any(c.kind in ("tradingview", "custom_signal") for c in self.config.start_conditions)


class BotStarts:
    def __init__(self, bars: BarRepository, *,
                 signal_valid_for: timedelta = DEFAULT_SIGNAL_VALID_FOR) -> None:
        self.bars = bars
        self.signal_valid_for = signal_valid_for
        self.bots: dict[str, _BotConditions] = {}
        self._signals_seen: set[str] = set()

    async def sync(self, bots: list[BotRecord]) -> None:
        """Follow the bots as stored: build the new and changed enabled ones, drop the rest."""
        enabled = {b.id: b for b in bots if b.enabled and not b.deleted}
        for bot_id in [b for b in self.bots if b not in enabled]:
            del self.bots[bot_id]
        for bot in enabled.values():
            fingerprint = orjson.dumps(bot.config, option=orjson.OPT_SORT_KEYS) + bot.venue.encode()
            held = self.bots.get(bot.id)
            if held is not None and held.fingerprint == fingerprint:
                continue
            try:
                config = parse_bot_config(bot.config)
            except BotConfigError as e:
                log.warning("bot %s: configuration no longer valid, no deal starts: %s", bot.id, e)
                continue
            pairs = {}
            for pair in config.pairs:
                conditions = StartConditions.build(config.start_conditions, venue=bot.venue, symbol=pair,
                                                   strategy=config.strategy,
                                                   signal_valid_for=self.signal_valid_for)
                await self._seed(conditions, bot.venue, pair)
                pairs[pair] = conditions
            self.bots[bot.id] = _BotConditions(fingerprint, config, bot.venue, pairs)
            log.info("bot %s: start conditions ready on %s", bot.id, ", ".join(pairs))

    async def _seed(self, conditions: StartConditions, venue: str, pair: str) -> None:
        history: list[Bar] = []
        for timeframe, n in conditions.bars_needed().items():
            history += [b for b in await self.bars.recent(venue, pair, timeframe, n + 1) if b.closed]
        if history:
            conditions.seed(history)

    def on_bar(self, bar: Bar) -> list[Trigger]:
        """A closed bar fed to every bot trading its pair on its venue; the starts it triggers."""
        out = []
        key = f"bar:{bar.timeframe}:{bar.open_time.isoformat()}"
        for bot_id, b in self.bots.items():
            conditions = b.pairs.get(bar.symbol)
            if conditions is None or b.venue != bar.venue or b.asap:
                continue
            if conditions.on_bar(bar):
                out.append(Trigger(bot_id, bar.symbol, key))
                conditions.consume()
        return out

    def on_signals(self, bot_id: str, signals: list[SignalRecord], now: datetime) -> list[Trigger]:
        """The bot's stored, unconsumed signals (oldest first) fed once each; those too old to
        start anything (received while nothing ran) are skipped."""
        b = self.bots.get(bot_id)
        out: list[Trigger] = []
        if b is None:
            return out
        for s in signals:
            if s.id in self._signals_seen:
                continue
            self._signals_seen.add(s.id)
            if now - s.received_at > self.signal_valid_for:
                continue
            signal = verified(s)
            for pair, conditions in b.pairs.items():
                if conditions.on_signal(signal):
                    out.append(Trigger(bot_id, pair, f"signal:{s.id}", s.id))
                    conditions.consume()
        return out

    def asap_pairs(self) -> list[tuple[str, str, BotConfig]]:
        """(bot, pair, config) of every enabled ASAP bot: started whenever its limits allow."""
        return [(bot_id, pair, b.config) for bot_id, b in self.bots.items() if b.asap for pair in b.pairs]

    def signal_bots(self) -> list[str]:
        return [bot_id for bot_id, b in self.bots.items() if b.takes_signals]


def verified(s: SignalRecord) -> VerifiedSignal:
    """A stored signal as the conditions read it (the webhook verified it before storing it)."""
    payload: dict[str, Any] = s.payload
    source: Literal["tradingview", "custom"] = "custom" if s.kind == "custom" else "tradingview"
    name = payload.get("signal") if source == "custom" else None
    pair = payload.get("pair")
    return VerifiedSignal(bot_id=s.bot_id, source=source, name=name if isinstance(name, str) else None,
                          pair=pair if isinstance(pair, str) else None, nonce=s.nonce, sent_at=s.received_at,
                          received_at=s.received_at, mode=next(iter(SigningMode)), payload=payload)
