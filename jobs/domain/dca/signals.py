"""Verifying an inbound webhook signal (TradingView alert or custom signal) for one bot.

A signal starts a deal, so it is authenticated like an order: every refusal raises
`SignalRefused` with a reason code (`Refusal`) and a short message for the caller to log and
answer with. Messages never quote the secret, the signature or the body.

The body is a JSON object:
    {"timestamp": "2026-01-05T14:30:00Z", "nonce": "a1b2...", "signal": "dip", "pair": "BTC/USDT",
     "secret": "..."}              # "secret" only in body mode; "signal" names a custom signal
- `timestamp`: ISO-8601 with a zone (TradingView's `{{timenow}}` gives one) or Unix seconds.
  Refused when older than `max_age` (stale) or more than `max_ahead` in the future (future-dated).
- `nonce`: any string up to 200 characters, unique per signal. Optional: when absent the SHA-256
  of the raw body stands for it, since TradingView has no random placeholder but a body carrying
  `{{timenow}}` differs on every firing; a byte-identical body sent again is then a replay.

Two ways to sign, both on by default (`modes`), the first to be preferred:
- `header`: `X-Tradingd-Signature: sha256=<hex HMAC-SHA256 of the raw body with the bot's
  secret>`. The secret never travels; a captured request cannot be altered, and replaying it is
  refused (nonce, then timestamp). For programs that can compute an HMAC.
- `body`: the secret itself in the body's `secret` field, because TradingView alerts cannot set
  headers nor compute anything. This is what 3Commas does with its own `secret`/`email_token`
  field. The trade-off: anyone who reads one request (a log, a proxy) holds the secret and can
  sign new signals, so it is safe only over TLS, with a per-bot secret that can be rotated; the
  timestamp and nonce checks still refuse a replay of a captured request.

Order of checks, and why: signature first (nothing from an unauthenticated body is trusted, and
a forger cannot burn nonces), then freshness, then the nonce, which is recorded only for an
authentic, fresh signal, and for `max_age + max_ahead` only: an older copy fails the timestamp.

`SeenNonces` is what remembers nonces; the caller implements it on Redis (`SET key 1 NX EX ttl`,
atomic, so two copies racing are still one signal); `InMemorySeenNonces` serves tests and a
single process. Pure otherwise: the caller passes the time in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol

SIGNATURE_HEADER = "x-tradingd-signature"
SIGNATURE_PREFIX = "sha256="
MAX_BODY_BYTES = 16 * 1024
MAX_NONCE_CHARS = 200
DEFAULT_MAX_AGE = timedelta(seconds=60)
DEFAULT_MAX_AHEAD = timedelta(seconds=10)


class SigningMode(StrEnum):
    HEADER = "header"  # HMAC-SHA256 of the raw body in a header
    BODY = "body"  # the shared secret in the JSON body (TradingView)


class Refusal(StrEnum):
    UNSIGNED = "unsigned"
    MALFORMED = "malformed"
    FORGED = "forged"
    STALE = "stale"
    FUTURE_DATED = "future_dated"
    REPLAYED = "replayed"


class SignalRefused(Exception):
    """A signal not accepted; `reason` is the code to log and count, `message` the short why."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class VerifiedSignal:
    """An authentic, fresh, first-seen signal for `bot_id`."""

    bot_id: str
    source: Literal["tradingview", "custom"]
    name: str | None  # the custom signal's name (`signal` field); None for a TradingView alert
    pair: str | None  # the pair it is for, if the body names one (multi-pair bots)
    nonce: str
    sent_at: datetime  # the signed timestamp
    received_at: datetime  # `now` as the caller passed it
    mode: SigningMode
    payload: Mapping[str, Any] = field(repr=False)  # the body without its `secret`


class SeenNonces(Protocol):
    async def first_seen(self, key: str, ttl_seconds: int) -> bool:
        """Record `key` for `ttl_seconds`; True if it was not already recorded (atomically)."""
        ...


class InMemorySeenNonces:
    """SeenNonces in a dict, expiring on `clock` (seconds; monotonic by default)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    async def first_seen(self, key: str, ttl_seconds: int) -> bool:
        now = self._clock()
        if len(self._expiry) > 1024:
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}
        expires = self._expiry.get(key)
        if expires is not None and expires > now:
            return False
        self._expiry[key] = now + ttl_seconds
        return True


@dataclass(frozen=True, slots=True)
class SignalPolicy:
    """How strict a bot's webhook is. The defaults suit TradingView, whose alerts arrive within
    seconds of `{{timenow}}`; `max_ahead` allows for the sender's clock running a little fast."""

    modes: frozenset[SigningMode] = frozenset(SigningMode)
    max_age: timedelta = DEFAULT_MAX_AGE
    max_ahead: timedelta = DEFAULT_MAX_AHEAD

    @property
    def nonce_ttl_seconds(self) -> int:
        return math.ceil((self.max_age + self.max_ahead).total_seconds()) + 1


def sign(body: bytes, secret: str) -> str:
    """The header value a sender puts in `X-Tradingd-Signature` (for senders written in Python,
    and for tests)."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def authenticate(body: bytes, headers: Mapping[str, str], *, bot_id: str, secret: str,
                 source: Literal["tradingview", "custom"], now: datetime,
                 policy: SignalPolicy = SignalPolicy()) -> VerifiedSignal:
    """Signature and freshness (pure); `verify` adds the replay check. Raises SignalRefused."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not secret:
        raise ValueError("a bot's webhook secret must not be empty")
    if len(body) > MAX_BODY_BYTES:
        raise SignalRefused(Refusal.MALFORMED, f"body over {MAX_BODY_BYTES} bytes")
    signature = _header(headers, SIGNATURE_HEADER)
    if signature is not None:
        if SigningMode.HEADER not in policy.modes:
            raise SignalRefused(Refusal.UNSIGNED, "this bot does not accept header signatures; "
                                "put the secret in the body's 'secret' field")
        if not _same(signature.strip().lower().removeprefix(SIGNATURE_PREFIX),
                     hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()):
            raise SignalRefused(Refusal.FORGED, "signature does not match the body and the bot's secret")
        payload = _parse(body)
        mode = SigningMode.HEADER
    else:
        payload = _parse(body)
        given = payload.get("secret")
        if given is None:
            raise SignalRefused(Refusal.UNSIGNED, f"no {SIGNATURE_HEADER} header and no 'secret' field")
        if SigningMode.BODY not in policy.modes:
            raise SignalRefused(Refusal.UNSIGNED, f"this bot accepts only the {SIGNATURE_HEADER} header")
        if not isinstance(given, str) or not _same(given, secret):
            raise SignalRefused(Refusal.FORGED, "the 'secret' field does not match the bot's secret")
        mode = SigningMode.BODY
    sent_at = _timestamp(payload.get("timestamp"))
    if now - sent_at > policy.max_age:
        raise SignalRefused(Refusal.STALE, f"timestamp {sent_at.isoformat()} is older than "
                            f"{policy.max_age.total_seconds():g} s")
    if sent_at - now > policy.max_ahead:
        raise SignalRefused(Refusal.FUTURE_DATED, f"timestamp {sent_at.isoformat()} is more than "
                            f"{policy.max_ahead.total_seconds():g} s ahead of this server's clock")
    nonce = payload.get("nonce")
    if nonce is None:
        nonce = "sha256:" + hashlib.sha256(body).hexdigest()
    elif not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_NONCE_CHARS:
        raise SignalRefused(Refusal.MALFORMED,
                            f"'nonce' must be a string of 1 to {MAX_NONCE_CHARS} characters")
    name = payload.get("signal")
    if source == "custom" and (not isinstance(name, str) or not name):
        raise SignalRefused(Refusal.MALFORMED, "a custom signal needs a 'signal' field naming it")
    pair = payload.get("pair")
    if pair is not None and not isinstance(pair, str):
        raise SignalRefused(Refusal.MALFORMED, "'pair' must be a string such as \"BTC/USDT\"")
    return VerifiedSignal(bot_id=bot_id, source=source, name=name if source == "custom" else None, pair=pair,
                          nonce=nonce, sent_at=sent_at, received_at=now, mode=mode,
                          payload={k: v for k, v in payload.items() if k != "secret"})


async def verify(body: bytes, headers: Mapping[str, str], *, bot_id: str, secret: str,
                 source: Literal["tradingview", "custom"], now: datetime, seen: SeenNonces,
                 policy: SignalPolicy = SignalPolicy()) -> VerifiedSignal:
    """Authenticate, then refuse a nonce already seen for this bot. Raises SignalRefused."""
    signal = authenticate(body, headers, bot_id=bot_id, secret=secret, source=source, now=now, policy=policy)
    if not await seen.first_seen(f"{bot_id}:{signal.nonce}", policy.nonce_ttl_seconds):
        raise SignalRefused(Refusal.REPLAYED, "this signal's nonce was already received")
    return signal


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of two strings of any length and content: their SHA-256 digests are
    compared, so neither the length nor a non-ASCII character changes the timing path."""
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest(),
                               hashlib.sha256(expected.encode()).digest())


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SignalRefused(Refusal.MALFORMED, "body is not JSON") from None
    if not isinstance(payload, dict):
        raise SignalRefused(Refusal.MALFORMED, "body must be a JSON object")
    return payload


def _timestamp(raw: object) -> datetime:
    if raw is None:
        raise SignalRefused(Refusal.MALFORMED, "no 'timestamp' field (ISO-8601 with a zone, or Unix seconds)")
    if isinstance(raw, bool):
        raise SignalRefused(Refusal.MALFORMED, "'timestamp' must be ISO-8601 with a zone or Unix seconds")
    if isinstance(raw, int | float):
        if not math.isfinite(raw) or not 0 <= raw < 1e11:
            raise SignalRefused(Refusal.MALFORMED, "'timestamp' in Unix seconds is out of range")
        return datetime.fromtimestamp(raw, UTC)
    if isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise SignalRefused(Refusal.MALFORMED, "'timestamp' is not ISO-8601") from None
        if ts.tzinfo is None:
            raise SignalRefused(Refusal.MALFORMED, "'timestamp' has no zone: end it with Z or +00:00")
        return ts.astimezone(UTC)
    raise SignalRefused(Refusal.MALFORMED, "'timestamp' must be ISO-8601 with a zone or Unix seconds")
