"""Every async test ends by its deadline with its asyncio tasks' stacks, instead of hanging the run.

Why: pytest-timeout's signal method raises its exception wherever the main thread happens to be.
Inside the event loop that is often a callback or another task's step (a daemon loop, a worker
job), where asyncio catches it: that task dies, the test goes on, and a test that waits on that
task waits for ever (a clean-clone CI run hung 11 minutes this way on
tests/bots/test_deal_starts.py). So each async test runs under its own asyncio deadline, 10 s
inside pytest-timeout's: just before it, every task's stack is written to stderr (pytest shows it
with the failure), then the test's task is cancelled, which unwinds its daemons and workers
through their own `finally` blocks and fails the test with a TimeoutError.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

MARGIN_S = 10.0  # inside pytest-timeout's limit: the cancel unwinds before that limit fires
DUMP_BEFORE_S = 1.0


def bound_async_tests(items: list[pytest.Item], default_timeout_s: float) -> None:
    """Wrap each async test function in its deadline (the item's timeout mark, else the ini's)."""
    for item in items:
        fn = getattr(item, "obj", None)
        if not inspect.iscoroutinefunction(fn):
            continue
        mark = item.get_closest_marker("timeout")
        limit = float(mark.args[0]) if mark is not None and mark.args else default_timeout_s
        item.obj = _bounded(fn, max(1.0, limit - MARGIN_S), item.nodeid)  # type: ignore[attr-defined]


Test = Callable[..., Awaitable[Any]]


def _bounded(fn: Test, deadline_s: float, name: str) -> Test:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        dump = loop.call_later(max(0.0, deadline_s - DUMP_BEFORE_S), _dump_tasks, name, deadline_s)
        try:
            async with asyncio.timeout(deadline_s):
                return await fn(*args, **kwargs)
        finally:
            dump.cancel()
    return run


def _dump_tasks(name: str, deadline_s: float) -> None:
    out = sys.stderr
    after = deadline_s - DUMP_BEFORE_S
    out.write(f"\n===== {name}: still running after {after:.0f} s; every asyncio task:\n")
    for task in asyncio.all_tasks():
        out.write(f"--- {task!r}\n")
        task.print_stack(limit=12, file=out)
    out.flush()
