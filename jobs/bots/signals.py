"""Accepting a bot's webhook signal (TradingView alert or custom signal): authenticate, refuse a
replay, store it once (ARCHITECTURE.md flow 2's DCA start conditions read it from there).

The checks are jobs/domain/dca/signals.py's (signature in a header or the secret in the body,
then freshness, then the nonce, remembered in Redis); the bot_signals row, unique per (bot,
nonce), is the replay check that survives a flushed Redis. Every refusal is logged with its
reason code and short message, never with the secret, the signature or the body, and answered
with an HTTP status a sender can act on: 401 unsigned or forged, 400 malformed, stale or
future-dated, 409 replayed, 404 no such bot (or one that takes no signals), 202 accepted.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson

from jobs.domain.dca.signals import Refusal, SeenNonces, SignalRefused, verify
from storage.repos import Pool, read, transaction
from storage.repos.bots import BotRecord, Bots
from storage.repos.signals import BotSignals

log = logging.getLogger("tradingd.webhooks")
BOT_ID = re.compile(r"^bot_[A-Za-z0-9]{1,36}$")
STATUS_OF = {Refusal.UNSIGNED: 401, Refusal.FORGED: 401, Refusal.MALFORMED: 400, Refusal.STALE: 400,
             Refusal.FUTURE_DATED: 400, Refusal.REPLAYED: 409}


@dataclass(frozen=True, slots=True)
class SignalAnswer:
    status: int
    reason: str  # "accepted", a Refusal code, or "unknown_bot"
    message: str
    signal_id: str | None = None

    def body(self) -> dict[str, str]:
        out = {"status": "accepted" if self.status == 202 else "refused", "reason": self.reason,
               "message": self.message}
        return out | ({"signal_id": self.signal_id} if self.signal_id else {})


async def receive_signal(pool: Pool, seen: SeenNonces, bot_id: str, body: bytes, headers: Mapping[str, str],
                         now: datetime) -> SignalAnswer:
    bot = None
    if BOT_ID.match(bot_id):
        async with read(pool) as db:
            bot = await Bots(db).get(bot_id)
    if bot is None or bot.deleted or not bot.webhook_secret:
        return _refused(bot_id, 404, "unknown_bot", "no bot with a webhook at this address")
    try:
        signal = await verify(body, headers, bot_id=bot.id, secret=bot.webhook_secret,
                              source=_source(bot, body), now=now, seen=seen)
    except SignalRefused as e:
        return _refused(bot_id, STATUS_OF[e.reason], e.reason.value, e.message)
    async with transaction(pool) as db:
        stored = await BotSignals(db).record("sig_" + uuid.uuid4().hex[:16], bot.id, signal.nonce,
                                             signal.source, now, dict(signal.payload))
    if stored is None:  # Redis forgot the nonce (flushed), Postgres did not
        return _refused(bot_id, 409, Refusal.REPLAYED.value, "this signal's nonce was already received")
    note = "" if bot.enabled else "; the bot is disabled, so it starts no deal"
    log.info("webhook signal %s accepted for bot %s (%s, %s)", stored.id, bot.id, signal.source, signal.mode)
    return SignalAnswer(202, "accepted", f"signal recorded{note}", stored.id)


def oversized(bot_id: str, limit: int) -> SignalAnswer:
    """A body over the size limit, refused (and logged) before it is read to its end."""
    return _refused(bot_id, 413, Refusal.MALFORMED.value, f"body over {limit} bytes")


def _source(bot: BotRecord, body: bytes) -> Literal["tradingview", "custom"]:
    """Which kind of signal the bot waits for; a bot waiting for both takes a body naming a
    `signal` as a custom one (the field is only read here to choose, not trusted: verify checks it)."""
    kinds = {c.get("kind") for c in bot.config.get("start_conditions", []) if isinstance(c, dict)}
    if "custom_signal" not in kinds:
        return "tradingview"
    if "tradingview" not in kinds:
        return "custom"
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    return "custom" if isinstance(parsed, dict) and "signal" in parsed else "tradingview"


def _refused(bot_id: str, status: int, reason: str, message: str) -> SignalAnswer:
    log.warning("webhook signal refused for bot %s: %s (%s)", bot_id[:40], reason, message)
    return SignalAnswer(status, reason, message)
