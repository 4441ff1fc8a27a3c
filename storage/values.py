"""The vocabulary every layer shares: plain, immutable values with no I/O.

These live at the bottom of the dependency graph (storage imports nothing of ours) so that the
ORM, the Redis state view, the worker's domain code and the MCP bridge all speak the same words
without the bridge having to import the ORM or the venues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from typing import Annotated, Literal

from pydantic import PlainSerializer

_WIDE = Context(prec=120)  # normalize() in the default context (28 digits) would round NUMERIC(38, 18)


def plain_decimal(d: Decimal) -> str:
    """Fixed-point without trailing zeros, every digit kept: 0E-18 -> "0", 60022.00 -> "60022".
    The exact form (what Redis stores); storage/figures.py has the form shown to a person.

    Most values (a venue's price as it came off the wire) are already in that form as str() gives
    them, at a fifth of normalize()'s cost: the market path encodes two per trade."""
    s = str(d)
    if "E" not in s and (s[-1] != "0" or "." not in s):
        return s
    return format(d.normalize(_WIDE), "f") if d.is_finite() else s


# A Decimal that leaves the process as a plain string ("0.1", never "1E-1" or "0.100000000000000000"),
# whatever scale NUMERIC(38, 18) gave it.
Amount = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
TimeInForce = Literal["gtc", "day", "ioc"]
# submitting: written before the venue call; unknown: the venue call timed out or failed in a way
# that leaves the outcome open, so reconciliation decides (never reported as a rejection).
# held: a bracket's exit leg, waiting for its entry to fill (it then opens).
OrderStatus = Literal[
    "submitting", "open", "partially_filled", "filled", "cancelled", "rejected", "unknown", "held"
]
OPEN_ORDER_STATUSES: frozenset[str] = frozenset({"submitting", "open", "partially_filled", "unknown", "held"})
FINAL_ORDER_STATUSES: frozenset[str] = frozenset({"filled", "cancelled", "rejected"})

CommandStatus = Literal["received", "running", "succeeded", "rejected", "failed", "unknown"]
FINAL_COMMAND_STATUSES: frozenset[str] = frozenset({"succeeded", "rejected", "failed"})
TradingState = Literal["ACTIVE", "HALTED"]
ScheduleStatus = Literal["active", "paused", "deleted"]
ScheduleRunStatus = Literal["enqueued", "ordered", "failed", "skipped_missed", "skipped_paused"]


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book for one symbol, as normalized from any feed dialect."""

    symbol: str  # canonical, e.g. "BTC/USDT", "SPY"
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts: datetime  # timezone-aware UTC, when we received it
    last: Decimal | None = None

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade print, as normalized from any feed dialect."""

    symbol: str
    price: Decimal
    qty: Decimal
    trade_id: str
    ts: datetime


# Bar timeframes, all of which divide a UTC day, so every bar opens on a UTC boundary
# (jobs/domain/bars.py). The same six names as Binance's and ccxt's intervals.
Timeframe = Literal["1m", "5m", "15m", "1h", "4h", "1d"]
TIMEFRAMES: tuple[Timeframe, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV candle of a symbol on a venue. `closed` is False while the bar is still being
    built (its interval has not ended), True once it is final. Bars built from quotes (a venue
    that streams no trades) have volume 0 and trades 0."""

    venue: str
    symbol: str
    timeframe: Timeframe
    open_time: datetime  # timezone-aware UTC, on the timeframe's boundary
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal  # base quantity traded
    trades: int
    closed: bool
