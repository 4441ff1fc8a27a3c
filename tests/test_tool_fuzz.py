"""A fuzz of every tool (tests/fuzz_tools.py) against the in-memory bridge with a real worker.

Asserts what issue 8 promises of bad input: no tool ever answers with an internal error (every
refusal is a short ToolError with a reason), and every command a tool acknowledged (succeeded or
pending) is final within a bound. CI runs a few hundred cases with a fixed seed; set
TRADINGD_FUZZ_EXAMPLES and TRADINGD_FUZZ_SEED for a bigger or another run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from fastmcp import Client

from storage.settings import Settings
from tests.fuzz_tools import fuzz_all_tools, unfinished_commands
from tests.stack import bridge_with_worker

EXAMPLES = int(os.environ.get("TRADINGD_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("TRADINGD_FUZZ_SEED", "8"))
FINAL_WITHIN_S = 30.0


@pytest.fixture
async def client(settings: Settings, redis) -> AsyncIterator[Client]:
    async with bridge_with_worker(settings, redis) as c:
        yield c


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
