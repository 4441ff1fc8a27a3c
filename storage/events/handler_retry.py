"""Calling a handler with bounded retries: the subscriber's answer to a poison event.

A handler that raises is called again up to `max_attempts` times in all, with a doubling wait
(tenacity); after that the caller parks the event in the dead-letter stream with the reason. A
store outage inside the handler (Postgres or Redis unreachable: storage/outage.unavailable) is
not the event's fault and uses up no attempt: the event waits, with backoff and one log line,
until the store is back, rather than being parked with everything else that arrives meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from storage.events.records import Event
from storage.events.subscription import Handler, SubscriberOptions
from storage.outage import OutageLog, unavailable

log = logging.getLogger("tradingd.events")


def is_error(exc: BaseException) -> bool:
    """Retry exceptions, never a cancellation (tenacity catches BaseException)."""
    return isinstance(exc, Exception)


class _Attempts:
    """tenacity's stop and wait for one event: faults use up the budget, store outages do not."""

    def __init__(self, retry: HandlerRetry) -> None:
        self.retry = retry
        self.faults = 0

    def note(self, exc: BaseException) -> None:
        if unavailable(exc):
            self.retry.outage.failed(exc)
        else:
            self.faults += 1
            log.warning("handler of %s failed (attempt %d of %d): %s: %s", self.retry.group, self.faults,
                        self.retry.options.max_attempts, type(exc).__name__, exc)

    def exhausted(self) -> bool:
        return self.faults >= self.retry.options.max_attempts

    def stop(self, rs: RetryCallState) -> bool:
        assert rs.outcome is not None
        exc = rs.outcome.exception()
        assert exc is not None
        self.note(exc)
        return self.exhausted()

    def wait(self, rs: RetryCallState | None = None) -> float:
        if self.retry.outage.down_since is not None:
            return self.retry.outage.delay()
        o = self.retry.options
        return min(o.retry_cap_s, o.retry_base_s * 2 ** max(0, self.faults - 1))


class HandlerRetry:
    def __init__(self, handler: Handler, options: SubscriberOptions, group: str) -> None:
        self.handler = handler
        self.options = options
        self.group = group
        self.outage = OutageLog(f"a store, for the handler of group {group}", log)

    async def call(self, event: Event) -> tuple[str, int] | None:
        """None once the handler returned; (reason, attempts) when it failed `max_attempts` times."""
        try:  # the usual case, without building a retry loop
            await self.handler(event)
            if self.outage.down_since is not None:
                self.outage.ok()
            return None
        except Exception as first:
            attempts = _Attempts(self)
            attempts.note(first)
            failed: BaseException = first
        if not attempts.exhausted():
            await asyncio.sleep(attempts.wait())
            try:
                async for attempt in AsyncRetrying(retry=retry_if_exception(is_error), stop=attempts.stop,
                                                   wait=attempts.wait, reraise=True):
                    with attempt:
                        await self.handler(event)
                self.outage.ok()
                return None
            except Exception as e:
                failed = e
        return f"{type(failed).__name__}: {failed}", attempts.faults
