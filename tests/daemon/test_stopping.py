"""daemon/stopping.py: a loop that swallows its cancel is still stopped (pure asyncio, no stores)."""

from __future__ import annotations

import asyncio
import time

import pytest

from daemon import stopping
from daemon.stopping import cancel_and_wait


async def _swallows_first_cancel(swallowed: list[int]) -> None:
    """A loop that loses its first cancel, as one inside Python 3.11's asyncio.wait_for can."""
    while True:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(1)  # lost: the loop goes round again


async def test_a_loop_that_swallowed_its_cancel_is_cancelled_again_and_ends(monkeypatch) -> None:
    monkeypatch.setattr(stopping, "RECANCEL_EVERY_S", 0.1)
    swallowed: list[int] = []
    stubborn = asyncio.create_task(_swallows_first_cancel(swallowed), name="stubborn")
    plain = asyncio.create_task(asyncio.sleep(60), name="plain")
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    await asyncio.wait_for(cancel_and_wait(stubborn, plain, None), 5)
    assert swallowed == [1] and stubborn.cancelled() and plain.cancelled()
    assert time.monotonic() - t0 < 2


async def test_an_error_a_task_ended_with_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("broken loop")
    task = asyncio.create_task(fails(), name="failing")
    await asyncio.sleep(0.01)
    await cancel_and_wait(task)
    assert "failing had ended with ValueError: broken loop" in caplog.text


async def test_the_caller_s_own_cancel_is_not_swallowed() -> None:
    swallowed: list[int] = []
    stubborn = asyncio.create_task(_swallows_first_cancel(swallowed))
    await asyncio.sleep(0.01)
    stopper = asyncio.create_task(cancel_and_wait(stubborn))
    await asyncio.sleep(0.05)  # the stopper waits for the stubborn loop
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    stubborn.cancel()
    await asyncio.gather(stubborn, return_exceptions=True)
