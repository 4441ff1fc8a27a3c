"""A loopback TCP proxy in front of Postgres whose link can be cut on purpose.

Why: a database outage seen by the daemon and the worker is either refused connections (the
server is down: connects fail at once, open connections are reset) or a silent server (a
network partition or a hung host: connects and sends hang with no answer). Both are produced
here for real, on real sockets, by sitting between the processes and Postgres, so the fault
tests and `python -m bench faults` need neither root, iptables nor a Postgres restart.

Modes, switchable at any time:
- ``pass``: bytes flow both ways.
- ``refuse``: the listening socket is closed (a connect gets ECONNREFUSED) and every open
  connection is reset (RST, both to the client and to Postgres).
- ``blackhole``: connects are accepted and kept, but nothing is forwarded in either direction;
  the bytes wait in the kernel's buffers. Back to ``pass``, they flow again, as after a healed
  partition (the client may of course have given up by then).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Literal

Mode = Literal["pass", "refuse", "blackhole"]
_CHUNK = 65536


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer gets a RST rather than an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to (upstream_host, upstream_port); see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0  # chosen at start(); kept across refuse -> pass so clients find it again
        self.mode: Mode = "pass"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen on a free loopback port (or the port it had); returns the port."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._reset_all()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def set_mode(self, mode: Mode) -> None:
        if mode == self.mode:
            return
        self.mode = mode
        if mode == "refuse":
            if self._server is not None:
                self._server.close()
                self._server = None
            self._flowing.clear()
            self._reset_all()
            return
        if self._server is None:
            await self.start()
        if mode == "pass":
            self._flowing.set()
        else:
            self._flowing.clear()

    async def hold(self, mode: Mode, seconds: float) -> None:
        """`mode` for `seconds`, then back to pass whatever happens (the bounded fault)."""
        async with self.fault(mode):
            await asyncio.sleep(seconds)

    @asynccontextmanager
    async def fault(self, mode: Mode) -> AsyncIterator[TcpProxy]:
        """`mode` inside the block, pass again on the way out (even on an error or cancel)."""
        await self.set_mode(mode)
        try:
            yield self
        finally:
            await self.set_mode("pass")

    def _reset_all(self) -> None:
        for w in list(self._writers):
            _reset(w)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            await self._flowing.wait()  # blackhole: accepted, then silence
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a reset, a closed peer, or close(): the connection is over either way
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._tasks.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Copy src to dst while flowing; in a blackhole neither read nor write (data waits)."""
        while True:
            await self._flowing.wait()
            data = await src.read(_CHUNK)
            if not data:
                with suppress(OSError):
                    dst.write_eof()
                return
            await self._flowing.wait()
            if dst.transport.is_closing():
                return
            dst.write(data)
            await dst.drain()
