"""The async test deadline (tests/deadline.py): a hung test fails with its tasks' stacks."""

from __future__ import annotations

import asyncio

import pytest

from tests import deadline


async def test_a_hung_coroutine_fails_by_its_deadline_after_dumping_every_task(capsys, monkeypatch) -> None:
    monkeypatch.setattr(deadline, "DUMP_BEFORE_S", 0.2)

    async def stuck_loop() -> None:
        await asyncio.Event().wait()

    async def hung_test() -> None:
        background = asyncio.create_task(stuck_loop(), name="a-daemon-loop")
        try:
            await asyncio.Event().wait()
        finally:
            background.cancel()

    with pytest.raises(TimeoutError):
        await deadline._bounded(hung_test, 0.5, "tests/x.py::hung_test")()
    err = capsys.readouterr().err
    assert "tests/x.py::hung_test: still running after 0 s" in err
    assert "a-daemon-loop" in err and "stuck_loop" in err and "hung_test" in err


async def test_a_test_that_ends_in_time_is_untouched(capsys) -> None:
    async def quick(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    assert await deadline._bounded(quick, 5.0, "quick")(1) == 2
    assert capsys.readouterr().err == ""
