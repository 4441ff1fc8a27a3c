"""Our rate-limit governor in front of ccxt's, one per venue: the exchange's limit is never hit.

Why a second limiter: ccxt's (`enableRateLimit`, a leaky bucket at the exchange's documented cost
per endpoint) paces one process's calls but knows nothing of what the exchange has counted (other
processes on the same IP, other tools on the same account) and ignores 429s. Binance states its
count in every answer (`X-MBX-USED-WEIGHT-1M`, the minute's request weight so far, per IP) and bans
an IP (418) that sends anything while it is throttled (429, `Retry-After` seconds). So:

- every answer is read (`observe`, hooked into ccxt's `on_rest_response`): the used weight, and on
  429/418 a pause of `Retry-After` seconds (or, without the header, a doubling backoff from 1 s);
- every request first passes `admit` (hooked into ccxt's `fetch`, after ccxt's own pacing): during a
  pause nothing is sent, by any caller of the venue; past `slow_down_at` of the limit requests are
  spaced so the rest of the minute's budget lasts the minute, and near the limit they wait for the
  next minute. A caller waits at most `max_wait_s`; past that it is refused with `RateLimited`
  (a `VenueUnavailable`: nothing was sent), which a worker's order turns into a clear refusal
  rather than sitting on a worker slot for a minute.

Hummingbot's Binance connector keeps its own weight table per endpoint; reading the exchange's own
count is smaller and also sees what other clients spent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jobs.venues.base import VenueUnavailable

log = logging.getLogger("tradingd.venues.ccxt")

WEIGHT_HEADER = "x-mbx-used-weight-1m"  # Binance's; an exchange without it is paced by ccxt alone
WINDOW_S = 60.0  # the header's window, calendar-aligned minutes
HARD_STOP = 0.95  # of the limit: from here on, wait for the next window
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0


class RateLimited(VenueUnavailable):
    """The venue is paused by its rate limit for longer than a caller waits: nothing was sent."""


class RateGovernor:
    def __init__(self, venue: str, weight_limit: int = 6000, slow_down_at: float = 0.7,
                 max_wait_s: float = 2.0, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.venue = venue
        self.weight_limit = weight_limit
        self.slow_down_at = slow_down_at
        self.max_wait_s = max_wait_s
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self._paused_until = 0.0  # monotonic
        self._backoff_s = 0.0  # the last pause without Retry-After (doubles on a repeat)
        self._used = 0  # the exchange's count in `_window`, from its last answer
        self._window = -1
        self._in_flight = 0  # sent, not yet answered: not in the count yet
        self._pacing = asyncio.Lock()
        self.throttled = 0  # 429/418 answers seen
        self.paused_s = 0.0  # time callers spent waiting here

    # -- what the exchange said ------------------------------------------------------------------

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """One answer: its used-weight count, and a pause for every caller on 429/418."""
        lower = {k.lower(): v for k, v in headers.items()}
        used = lower.get(WEIGHT_HEADER)
        if used is not None and used.isdigit():
            self._window, self._used = self._window_now(), int(used)
        if status in (418, 429):
            self.throttled += 1
            retry_after = lower.get("retry-after", "")
            if retry_after.isdigit():
                pause = float(retry_after)
            else:
                self._backoff_s = min(MAX_BACKOFF_S, self._backoff_s * 2 or FIRST_BACKOFF_S)
                pause = self._backoff_s
            self._paused_until = max(self._paused_until, self._clock() + pause)
            log.warning("%s answered %s: no request to it for %.0f s", self.venue, status, pause)
        elif status < 400:
            self._backoff_s = 0.0

    # -- before each request ---------------------------------------------------------------------

    @property
    def paused_for(self) -> float:
        """Seconds until requests may be sent again (0: not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def used_weight(self) -> int:
        """The exchange's count this window, plus requests sent since its last answer."""
        used = self._used if self._window == self._window_now() else 0
        return used + self._in_flight

    async def admit(self) -> None:
        """Wait until a request may be sent (at most `max_wait_s`), or raise `RateLimited`."""
        waited = 0.0
        while (wait := self._blocked_for()) > 0:  # a pause, or the limit reached: wait it out
            waited += self._wait(wait, waited)
            await self._sleep(wait)
        pace = self._spacing()
        if pace > 0:
            waited += self._wait(pace, waited)
            async with self._pacing:  # paced callers go one at a time
                await self._sleep(pace)
        self._in_flight += 1

    def _wait(self, wait: float, waited: float) -> float:
        if waited + wait > self.max_wait_s:
            raise RateLimited(f"{self.venue}: rate limit, requests paused for {wait:.1f} s more; "
                              "nothing was sent")
        self.paused_s += wait
        return wait

    def done(self) -> None:
        """The request admitted last was answered or failed."""
        self._in_flight = max(0, self._in_flight - 1)

    def _blocked_for(self) -> float:
        """How long no request may go: a 429/418 pause, or the rest of a minute used up."""
        if self.paused_for > 0:
            return self.paused_for
        if self.used_weight() >= self.weight_limit * HARD_STOP:
            # Binance's minute turns on the exchange's clock: a small margin past ours
            return WINDOW_S - self._wall() % WINDOW_S + 0.05
        return 0.0

    def _spacing(self) -> float:
        """Past `slow_down_at`: the minute's remaining time over its remaining weight, per request."""
        used = self.used_weight()
        if used < self.weight_limit * self.slow_down_at:
            return 0.0
        budget = self.weight_limit * HARD_STOP - used  # weight left this minute
        return (WINDOW_S - self._wall() % WINDOW_S) / max(budget, 1.0)

    def _window_now(self) -> int:
        return int(self._wall() // WINDOW_S)


def govern(exchange: Any, governor: RateGovernor) -> None:
    """Put `governor` in the path of every REST request `exchange` (a ccxt instance) makes."""
    send, answered = exchange.fetch, exchange.on_rest_response

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        await governor.admit()
        try:
            return await send(url, method, headers, body)
        finally:
            governor.done()

    def on_rest_response(code: Any, reason: Any, url: str, method: str, response_headers: Any,
                         response_body: Any, request_headers: Any, request_body: Any) -> Any:
        governor.observe(int(code), response_headers or {})
        return answered(code, reason, url, method, response_headers, response_body, request_headers,
                        request_body)

    exchange.fetch = fetch
    exchange.on_rest_response = on_rest_response
