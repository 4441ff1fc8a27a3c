"""A fuzz of every tool (tests/fuzz_tools.py) against the in-memory bridge with a real worker.

Asserts what issue 8 promises of bad input: no tool ever answers with an internal error (every
refusal is a short ToolError with a reason), and every command a tool acknowledged (succeeded or
pending) is final within a bound. CI runs a few hundred cases with a fixed seed; set
TRADINGD_FUZZ_EXAMPLES and TRADINGD_FUZZ_SEED for a bigger or another run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from fastmcp import Client

from jobs.worker import run_worker
from mcp_bridge.server import build_server
from storage.settings import Settings
from storage.state import keys
from tests.fuzz_tools import fuzz_all_tools, unfinished_commands
from tests.helpers import put_quote
from tests.stack import eventually

EXAMPLES = int(os.environ.get("TRADINGD_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("TRADINGD_FUZZ_SEED", "8"))
FINAL_WITHIN_S = 30.0
QUOTES = {"BTC/USDT": ("60000.00", "60010.00"), "ETH/USDT": ("3000.00", "3000.50"),
          "SPY": ("500.00", "500.02")}


@pytest.fixture
async def client(settings: Settings, redis) -> AsyncIterator[Client]:
    """The bridge with a worker behind it and a feed that keeps every quote fresh."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))

    async def feed() -> None:
        while True:
            for symbol, (bid, ask) in QUOTES.items():
                await put_quote(redis, symbol, bid, ask)
            await asyncio.sleep(0.5)

    quotes = asyncio.create_task(feed())
    try:
        await eventually(lambda: redis.hlen(keys.BALANCES), timeout=20)
        async with Client(build_server(settings)) as c:
            yield c
    finally:
        quotes.cancel()
        stop.set()
        await asyncio.wait_for(worker, 40)


async def test_no_tool_answers_with_an_internal_error_and_every_acknowledged_command_ends(client):
    report = await fuzz_all_tools(client, examples=EXAMPLES, seed=SEED, in_memory=True)
    details = "\n".join(f"  {e.tool} {e.args}\n    -> {e.error}" for e in report.examples)
    assert report.internal_errors == 0, f"{report.summary()} (seed {SEED})\n{details}"
    assert report.calls == EXAMPLES
    # the run reached the worker and the happy paths, not only the refusals
    assert report.ok > EXAMPLES // 10 and report.tool_errors > EXAMPLES // 10, report.summary()
    assert report.acknowledged, report.summary()
    stuck = await unfinished_commands(client, report.acknowledged, within_s=FINAL_WITHIN_S)
    assert not stuck, f"acknowledged but not final within {FINAL_WITHIN_S:g} s: {stuck}"
