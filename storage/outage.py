"""Telling an outage from a fault, and logging an outage once instead of once per attempt.

Why: when Postgres or Redis is down, every loop that touches it fails on every iteration. A
traceback per iteration buries the one line that matters (when it started, when it ended) and
costs CPU. `unavailable(exc)` says whether an exception means "the store is not reachable now,
try again later" (a refused or dropped connection, a timeout, a server shutting down) rather
than a fault in the request; `OutageLog` turns a stream of such failures into two log lines and
a backoff delay.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from dataclasses import dataclass, field

import asyncpg
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

# asyncpg's classes for "the server is not there or not accepting work": refused or dropped
# connections, a server starting up or shutting down, too many clients, a cancelled statement
# after a timeout. A DataError or an IntegrityError is a fault of the request and is not here.
_PG_UNAVAILABLE = (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                   asyncpg.exceptions.InternalClientError, asyncpg.exceptions.InsufficientResourcesError,
                   asyncpg.exceptions.CannotConnectNowError, asyncpg.InterfaceError)
_REDIS_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError)
_OS_UNAVAILABLE = (ConnectionError, TimeoutError, socket.gaierror)


def unavailable(exc: BaseException) -> bool:
    """True if `exc`, or anything it was raised from, says a store was unreachable (retry later)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, _PG_UNAVAILABLE + _REDIS_UNAVAILABLE + _OS_UNAVAILABLE):
            return True
        if type(e) is OSError:  # asyncpg's "Multiple exceptions: [Errno 111] Connect call failed ..."
            return True
        if getattr(e, "connection_invalidated", False):  # SQLAlchemy's DBAPIError on a dead connection
            return True
        e = e.__cause__ or e.__context__
    return False


def backoff_s(attempt: int, *, base: float = 0.25, cap: float = 5.0) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to `base`, doubling up to `cap`."""
    # the exponent is capped: a shared log counts every loop's attempts, and a long outage passes
    # 1,024 of them, where 2 ** n no longer converts to a float (it crashed the loops it paced)
    return random.uniform(base / 2, min(cap, base * 2 ** min(max(0, attempt - 1), 30)))


def retry_through_outage(outage: OutageLog, *, base: float = 0.25, cap: float = 5.0) -> AsyncRetrying:
    """Retry an attempt for as long as the store it needs is unreachable (`unavailable`), with the
    same full-jitter backoff as `backoff_s`, the outage logged once through `outage`; any other
    error propagates at once. Call `outage.ok()` after it succeeds.

    Usage: `async for attempt in retry_through_outage(outage): with attempt: await op()`.
    """
    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is not None:
            outage.failed(exc)

    return AsyncRetrying(retry=retry_if_exception(unavailable), before_sleep=note, reraise=True,
                         wait=wait_random_exponential(multiplier=base, max=cap, min=base / 2))


@dataclass
class OutageLog:
    """One warning when `what` becomes unreachable, one info line when it is back, nothing between.

    Usage: call `failed(exc)` on each failed attempt and sleep `delay()`; call `ok()` after a
    success. `down_since` (monotonic) is None while healthy, for health reports.
    """

    what: str
    logger: logging.Logger
    down_since: float | None = None
    attempts: int = 0
    last_error: str = ""
    _wall_start: float = field(default=0.0, repr=False)

    def failed(self, exc: BaseException) -> None:
        self.attempts += 1
        self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if self.down_since is None:
            self.down_since = time.monotonic()
            self._wall_start = time.time()
            self.logger.warning("%s unreachable (%s); retrying with backoff, quiet until it is back",
                                self.what, self.last_error)

    def ok(self) -> None:
        if self.down_since is not None:
            self.logger.warning("%s reachable again after %.1f s (%d failed attempts)", self.what,
                                time.monotonic() - self.down_since, self.attempts)
        self.down_since = None
        self.attempts = 0

    def delay(self, *, base: float = 0.25, cap: float = 5.0) -> float:
        return backoff_s(self.attempts, base=base, cap=cap)

    @property
    def down_for_s(self) -> float | None:
        return None if self.down_since is None else time.monotonic() - self.down_since
