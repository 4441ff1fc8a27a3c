"""No product code awaits through `asyncio.wait_for`, which can swallow a cancellation on 3.11.

Why: Python 3.11's wait_for returns the awaited result when a cancel lands in the same loop
iteration as the result, and the cancel is lost. A loop that loses its cancel never stops: the
daemon's stop waited for ever on its database probe (storage/db_probe.py), which hung
tests/bots/test_deal_starts.py in loaded runs, and with it two CI runs. `asyncio.timeout` keeps
the cancel. pyproject.toml bans the name for ruff too (TID251); this holds it without ruff.
"""

from __future__ import annotations

import ast
import asyncio
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("daemon", "jobs", "storage", "mcp_bridge")


def _uses_of_wait_for(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "wait_for" and \
                isinstance(node.value, ast.Name) and node.value.id == "asyncio":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio" and \
                any(a.name == "wait_for" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_no_product_module_uses_asyncio_wait_for() -> None:
    found = [f"{p.relative_to(ROOT)}:{n}" for pkg in PRODUCT for p in sorted((ROOT / pkg).rglob("*.py"))
             for n in _uses_of_wait_for(p.read_text())]
    assert found == [], "asyncio.wait_for can swallow a cancel (module docstring); use asyncio.timeout: " + \
        ", ".join(found)


def test_the_check_sees_both_spellings() -> None:
    assert _uses_of_wait_for("import asyncio\nasync def f():\n    await asyncio.wait_for(g(), 1)\n") == [3]
    assert _uses_of_wait_for("from asyncio import sleep, wait_for\n") == [1]
    assert _uses_of_wait_for("import asyncio\nasync def f():\n    async with asyncio.timeout(1):\n"
                             "        await g()\n") == []


async def _cancel_as_it_answers(wrap: str) -> bool:
    """Cancel a task in the very loop iteration its awaited future gets its result; True if the
    task saw the cancel."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[int] = loop.create_future()
    seen = asyncio.Event()

    async def waiter() -> None:
        try:
            if wrap == "wait_for":
                await asyncio.wait_for(answer, 5)  # the flaw shown
            else:
                async with asyncio.timeout(5):
                    await answer
        except asyncio.CancelledError:
            seen.set()
            raise

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)  # the waiter is parked on `answer`
    answer.set_result(1)
    task.cancel()  # lands in the same iteration as the result
    await asyncio.gather(task, return_exceptions=True)
    return seen.is_set()


@pytest.mark.parametrize("wrap, keeps_the_cancel", [("wait_for", sys.version_info >= (3, 12)),  # fixed there
                                                    ("timeout", True)])
async def test_what_a_cancel_landing_with_the_answer_does(wrap: str, keeps_the_cancel: bool) -> None:
    """The flaw itself, on this interpreter: wait_for loses the cancel, asyncio.timeout keeps it."""
    assert await _cancel_as_it_answers(wrap) is keeps_the_cancel
