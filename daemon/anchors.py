"""The daemon's audit anchoring: the chain head, appended to the anchor file whenever it moved.

See storage/audit_anchor.py for why. At start, every `every_s` and once more at shutdown; the file
write (with its fsync) runs in a thread so the event loop never waits on the disk. The file is
not read back at start (it only grows): a restart appends the head once more, which is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from daemon.outages import LoopErrors, StoreOutages
from daemon.stopping import cancel_and_wait
from storage.audit_anchor import Anchor, ChainHeads, append_anchor

log = logging.getLogger("tradingd.anchors")


class AuditAnchorer:
    def __init__(self, heads: ChainHeads, path: Path, every_s: float,
                 outages: StoreOutages | None = None) -> None:
        self.heads = heads  # storage's reader of the chain head (Store.audit_heads)
        self.errors = LoopErrors(f"audit anchoring to {path}", outages or StoreOutages(log), log)
        self.path = path
        self.every_s = every_s
        self.database = ""  # current_database(), what anchors are kept under
        self._last: Anchor | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.database = await self.heads.database_name()
        # the absolute path: `tradingd audit verify` must be pointed at this file (it resolves the
        # setting against its own working directory)
        log.info("audit anchors for database %s go to %s", self.database, self.path.resolve())
        await self.anchor()
        self._task = asyncio.create_task(self._loop(), name="audit-anchors")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.anchor()  # the head as the daemon leaves it

    async def anchor(self) -> bool:
        """Append the chain head if it moved since the last anchor; True if it did."""
        head = await self.heads.head()
        if head is None or head == self._last:
            return False
        await asyncio.to_thread(append_anchor, self.path, self.database, head)
        self._last = head
        return True

    async def _loop(self) -> None:
        delay = self.every_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.anchor()
                self.errors.ok(db=True)
                delay = self.every_s
            except Exception as e:  # a full disk, a lost connection: logged once, retried
                delay = min(self.every_s, self.errors.failed(e))
