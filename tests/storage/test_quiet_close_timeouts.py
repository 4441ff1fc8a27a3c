"""An expired pooled connection whose close times out on a silent server is one log line, not an
asyncio traceback; every other unretrieved task exception still reaches the previous handler."""

from __future__ import annotations

import asyncio
import gc
import logging

from storage.driver import quiet_expired_close_timeouts


class Connection:  # the qualname asyncpg's close task carries: Connection.close
    async def close(self) -> None:
        raise TimeoutError


async def _other() -> None:
    raise TimeoutError


async def _drop_unretrieved(coro) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert task.done()
    del task
    gc.collect()  # the task's destructor reports its unretrieved exception to the loop's handler


async def test_an_expired_connections_close_timeout_is_a_line_and_others_still_reach_the_handler(caplog):
    loop = asyncio.get_running_loop()
    seen: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    quiet_expired_close_timeouts(loop)
    quiet_expired_close_timeouts(loop)  # a second pool in the process installs nothing more
    with caplog.at_level(logging.INFO, logger="tradingd.db"):
        await _drop_unretrieved(Connection().close())
        assert seen == []
        assert any("did not close in time" in r.getMessage() for r in caplog.records)
        await _drop_unretrieved(_other())
    assert len(seen) == 1 and isinstance(seen[0]["exception"], TimeoutError)
    loop.set_exception_handler(None)
