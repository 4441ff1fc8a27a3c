"""Is Postgres answering? The daemon's probe for health reports, bounded so it never hangs.

Why: health must say "database unreachable" within two seconds, whether Postgres refuses
connections or goes silent (a blackholed network). The pools' connections may be busy, or
stuck waiting on a silent server; the probe keeps one connection of its own and bounds both
the connect and SELECT 1 by `timeout_s`, dropping the connection after any failure. In storage/
because it is a connection to Postgres: the daemon reaches Postgres through storage only.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import asyncpg

from storage.outage import OutageLog


class DbProbe:
    def __init__(self, database_url: str, outage: OutageLog, *, timeout_s: float = 1.0) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.outage = outage
        self.timeout_s = timeout_s
        self.ok: bool | None = None  # None: not probed yet
        self.error: str | None = None
        self.down_since: datetime | None = None
        self._conn: asyncpg.Connection | None = None

    async def probe(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                await self._select_1()
        except Exception as e:
            await self._drop()
            self.ok = False
            self.error = "no answer within the timeout" if isinstance(e, TimeoutError) else \
                f"{type(e).__name__}: {str(e)[:160]}"
            self.down_since = self.down_since or datetime.now(UTC)
            self.outage.failed(e)
            return False
        self.ok, self.error, self.down_since = True, None, None
        self.outage.ok()
        return True

    async def _select_1(self) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.dsn, timeout=self.timeout_s)
        await self._conn.fetchval("SELECT 1", timeout=self.timeout_s)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout_s):
                    await self._conn.close()
            await self._drop()

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error,
                "down_since": self.down_since.isoformat() if self.down_since else None}
