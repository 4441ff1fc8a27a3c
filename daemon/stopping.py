"""Stopping the daemon's background loops so that they stop: a swallowed cancel is asked again.

Why: a loop that loses its cancel goes round again, and a stop that awaits it once waits for ever.
The daemon's stop did, on Python 3.11's `asyncio.wait_for`, which returns the awaited result when
a cancel lands as it completes (tests/bots/test_deal_starts.py under load; our code no longer uses
it: tests/test_cancellation_safety.py). Of the libraries on these loops' paths, asyncpg and
SQLAlchemy work around that flaw and redis-py uses wait_for only with a socket timeout, which we
do not set; so this is a guard for a cancel swallowed anywhere else, and it says so in the log
when it happens. Each loop still running after RECANCEL_EVERY_S is cancelled again, until it ends.
The loops stopped this way hold nothing to clean up that a second cancel would interrupt.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("tradingd.daemon")
RECANCEL_EVERY_S = 1.0


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks and return once every one has ended (an error one ended with is logged)."""
    pending = {t for t in tasks if t is not None}
    for t in pending:
        t.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_EVERY_S)
        for t in pending:
            log.warning("task %s went on after its cancel (a cancel swallowed); cancelling it again",
                        t.get_name())
            t.cancel()
    for ended in tasks:
        if ended is not None and not ended.cancelled() and (error := ended.exception()) is not None:
            log.warning("task %s had ended with %s: %s", ended.get_name(), type(error).__name__, error)
