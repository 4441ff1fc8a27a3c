"""storage/outage.py: telling an outage from a fault, and pacing the retries through one."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from storage.driver import DatabaseConnectionLost
from storage.outage import OutageLog, backoff_s, unavailable


@pytest.mark.parametrize("attempt", [0, 1, 2, 10, 1_025, 10**6])
def test_backoff_stays_within_its_bounds_however_long_the_outage(attempt):
    """A long outage counts thousands of attempts (every loop of a process shares one log); the delay
    must stay a number between base/2 and cap, never overflow (2 ** 1024 is not a float)."""
    delay = backoff_s(attempt, base=0.25, cap=5.0)
    assert 0.125 <= delay <= 5.0


def test_an_outage_is_logged_once_each_way_however_many_attempts(caplog):
    caplog.set_level(logging.INFO)
    log = OutageLog("Postgres", logging.getLogger("t.outage"))
    for _ in range(2_000):
        log.failed(ConnectionRefusedError(111, "refused"))
        assert log.delay() <= 5.0
    log.ok()
    log.ok()
    lines = [r.getMessage() for r in caplog.records if r.name == "t.outage"]
    assert len(lines) == 2 and "unreachable" in lines[0] and "reachable again" in lines[1], lines


def test_what_counts_as_an_outage():
    assert unavailable(ConnectionRefusedError(111, "refused"))
    assert unavailable(OSError("Multiple exceptions: [Errno 111] Connect call failed"))
    assert unavailable(TimeoutError())
    assert unavailable(RedisConnectionError("gone"))
    assert unavailable(asyncpg.exceptions.CannotConnectNowError("starting up"))
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except ConnectionResetError as inner:
            raise DatabaseConnectionLost("lost") from inner
    except DatabaseConnectionLost as wrapped:
        assert unavailable(wrapped)
    # faults of the request, not of the store
    assert not unavailable(ValueError("bad"))
    assert not unavailable(FileNotFoundError("x"))
    assert not unavailable(asyncpg.exceptions.NumericValueOutOfRangeError("overflow"))
