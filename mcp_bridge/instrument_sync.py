"""Before each tool call, the bridge's instrument catalogue catches up with the venues' published
lists (jobs/published_instruments.py): one GET of a stamp, the lists read only when it changed,
and that GET made at most once per STAMP_MAX_AGE_S.

Why a middleware: every tool that names a symbol (quotes, previews, place, schedules, portfolio
figures) looks it up in the catalogue, so each must see a live venue's symbols and increments
(a preview rounded with the paper list would not be the order the worker places). A failed or
slow read never fails the call: the tool runs with the catalogue it has, and the tool's own
reads report an unreachable Redis (the health tool must still answer "down" within its bound).

Why the stamp is trusted for STAMP_MAX_AGE_S: the GET before every call was about 5 % of the
bridge's CPU per call under load (`python -m bench mcp_load`), for a stamp that changes only when
the daemon publishes its venues' lists (daemon/instruments.py: at start-up, when a provider
reports a change, after a flush). The staleness this allows: instruments the daemon publishes are
seen by every call that starts STAMP_MAX_AGE_S or more after the publish; a call within that time
may still use the lists before it (as a call racing the publish always could). A failed or timed
out read is not trusted: the next call asks again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastmcp.server.middleware import Middleware, MiddlewareContext

from jobs.published_instruments import PublishedInstruments
from mcp_bridge.context import Bridge

SYNC_TIMEOUT_S = 0.5  # a silent Redis delays a call by at most this much here
STAMP_MAX_AGE_S = 1.0  # how long a stamp read is trusted (monotonic clock): the module's docstring
log = logging.getLogger("tradingd.mcp")


class InstrumentSync(Middleware):
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.catalogue: PublishedInstruments | None = None
        self.checked_at = float("-inf")  # time.monotonic() of the last successful stamp read (none yet)

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        if self.bridge.connected and time.monotonic() - self.checked_at >= STAMP_MAX_AGE_S:
            await self.sync()
        return await call_next(context)

    async def sync(self) -> None:
        """Refresh the catalogue from the state view, bounded; a failure is logged, not raised."""
        try:
            redis = self.bridge.redis
            if self.catalogue is None or self.catalogue.reader.redis is not redis:  # a new pool: start over
                self.catalogue = PublishedInstruments(redis, self.bridge.settings)
            started = time.monotonic()
            # asyncio.timeout, not wait_for: the same bound without a task of its own on every call
            async with asyncio.timeout(SYNC_TIMEOUT_S):
                loaded = await self.catalogue.refresh()
            self.checked_at = started
            if loaded:
                log.info("instrument catalogue loaded from the venues' published lists (stamp %s)",
                         self.catalogue.stamp)
        except Exception as e:  # Redis down or silent: the tool's own reads say so
            log.debug("instrument catalogue not refreshed: %s", type(e).__name__)
