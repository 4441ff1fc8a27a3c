"""A redis-server of our own for tests that kill and restart Redis for real.

Why: the shared test Redis cannot be restarted without disturbing every other test; this one
runs on a free loopback port in a temporary directory and can be killed (SIGKILL, no shutdown
save) and started again on the same port, with or without an append-only file.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from pathlib import Path

from redis.asyncio import Redis

REDIS_SERVER = "redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        self.dir = workdir
        self.port = free_port()
        self.appendonly = appendonly
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, bound_s: float = 10.0) -> None:
        """Start on our port and wait (bounded) until it answers PING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--protected-mode", "no",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220  # returns at once
        client = Redis.from_url(self.url)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound_s
        try:
            while True:
                try:
                    if await client.ping():
                        return
                except Exception:  # refused while starting, LOADING while reading its file
                    if loop.time() > deadline:
                        raise RuntimeError(f"redis-server on {self.port} not up in {bound_s} s") from None
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, connections dropped."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
