"""Running several subscriptions in one asyncio task group, stopping them cleanly.

The daemon and the worker each run a few subscribers; this keeps them as one unit with one way
to stop: `stop` (an event) asks each to finish the handler in progress and acknowledge what it
handled, waits up to `grace_s`, then cancels what is still running (an event whose handler is
cut short stays pending and is handled again after the restart; handlers are idempotent).
Cancelling the task that runs `run_subscribers` cancels them all at once. A subscriber never
ends on its own on a Redis outage or a failing handler (storage/events/subscriber.py), so the
group ends only when asked to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from storage.events.subscriber import Subscriber


async def run_subscribers(subscribers: Sequence[Subscriber], stop: asyncio.Event | None = None, *,
                          grace_s: float = 5.0) -> None:
    """Run every subscriber until `stop` is set (then stop them cleanly) or until cancelled."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(s.run(), name=f"events:{s.group}:{s.consumer}") for s in subscribers]
        if stop is None:
            return  # the task group waits for them: they end only by cancellation
        await stop.wait()
        for s in subscribers:
            s.request_stop()
        _, late = await asyncio.wait(tasks, timeout=grace_s)
        for t in late:
            t.cancel()
