"""Request weight per window, enforced as Binance does, and a count of every request.

Each request adds its endpoint's weight to the current window (calendar-aligned, one minute by
default; `X-MBX-USED-WEIGHT-1M` reports the sum). Over the limit: HTTP 429 with `Retry-After` (seconds
to the window's end). A client that sends anything before that time is banned: HTTP 418 with
`Retry-After` for `ban_s`, on every request until the ban ends. Both bodies are `-1003`.
Tests read `requests` (per "METHOD /path"), `peak_weight` (the most weight any window saw) and
`throttled` / `banned` (how often 429/418 were answered) to show that a client stayed under the limit.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

from tests.fakes.binance_spot import errors
from tests.fakes.binance_spot.errors import BinanceError


def window_label(window_s: float) -> str:
    """The interval suffix Binance puts in header names: 1S, 10S, 1M, 1H, 1D..."""
    seconds = int(window_s)
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400}D"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}H"
    if seconds % 60 == 0:
        return f"{seconds // 60}M"
    return f"{seconds}S"


def too_much_weight(limit: int, window_s: float, retry_after_s: int) -> BinanceError:
    return BinanceError(
        errors.TOO_MANY_REQUESTS,
        f"Too much request weight used; current limit is {limit} request weight per "
        f"{window_label(window_s)}. Please use WebSocket Streams for live updates to avoid "
        "polling the API.",
        status=429,
        headers={"Retry-After": str(retry_after_s)},
    )


def banned_until(until_ms: int, retry_after_s: int) -> BinanceError:
    return BinanceError(
        errors.TOO_MANY_REQUESTS,
        f"Way too much request weight used; IP banned until {until_ms}. Please use WebSocket "
        "Streams for live updates to avoid bans.",
        status=418,
        headers={"Retry-After": str(retry_after_s)},
    )


class RequestWeightLimiter:
    def __init__(
        self,
        limit: int = 6000,
        window_s: float = 60.0,
        ban_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.ban_s = ban_s
        self.clock = clock
        self.requests: Counter[str] = Counter()
        self.peak_weight = 0
        self.throttled = 0
        self.banned = 0
        self._window = -1
        self._used = 0
        self._throttled_until = 0.0
        self._banned_until = 0.0
        self._orders: dict[int, tuple[int, int]] = {}  # window length (s) -> (window index, orders in it)

    @property
    def header(self) -> str:
        return f"X-MBX-USED-WEIGHT-{window_label(self.window_s)}"

    @property
    def used_weight(self) -> int:
        return self._used if self._window == int(self.clock() // self.window_s) else 0

    def rate_limits(self) -> list[dict[str, object]]:
        """`exchangeInfo.rateLimits`, stating this limiter's numbers."""
        seconds = int(self.window_s)
        interval, num = ("MINUTE", seconds // 60) if seconds % 60 == 0 else ("SECOND", seconds)
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": interval,
                "intervalNum": num,
                "limit": self.limit,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
        ]

    def count(self, method: str, path: str) -> None:
        self.requests[f"{method} {path}"] += 1

    def admit(self, weight: int) -> int:
        """Charge one request; the window's used weight, or a 429/418 refusal."""
        now = self.clock()
        if now < self._banned_until:
            self.banned += 1
            raise banned_until(int(self._banned_until * 1000), math.ceil(self._banned_until - now))
        if now < self._throttled_until:
            self._banned_until = now + self.ban_s
            self.banned += 1
            raise banned_until(int(self._banned_until * 1000), math.ceil(self.ban_s))
        window = int(now // self.window_s)
        if window != self._window:
            self._window, self._used = window, 0
        self._used += weight
        self.peak_weight = max(self.peak_weight, self._used)
        if self._used > self.limit:
            self._throttled_until = (window + 1) * self.window_s
            self.throttled += 1
            raise too_much_weight(self.limit, self.window_s, max(1, math.ceil(self._throttled_until - now)))
        return self._used

    def count_order(self) -> dict[str, str]:
        """Count an accepted order; the `X-MBX-ORDER-COUNT-10S` / `-1D` headers Binance adds to its answer
        (counted only: the fake does not refuse on order counts)."""
        now = self.clock()
        headers = {}
        for window_s in (10, 86_400):
            window = int(now // window_s)
            if self._orders.get(window_s, (None, 0))[0] != window:
                self._orders[window_s] = (window, 0)
            self._orders[window_s] = (window, self._orders[window_s][1] + 1)
            headers[f"X-MBX-ORDER-COUNT-{window_label(window_s)}"] = str(self._orders[window_s][1])
        return headers

    def reset(self) -> None:
        """Forget the window, throttling and ban (counters too), e.g. between phases of a test."""
        self.__init__(self.limit, self.window_s, self.ban_s, self.clock)  # type: ignore[misc]
