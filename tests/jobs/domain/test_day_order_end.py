"""When a `day` order ends (jobs/domain/sessions.day_order_end), at fixed instants.

SPY: the close of the NYSE session it was placed in (the next session's if placed while the
market was closed), early closes included; BTC/USDT (24/7): 00:00 UTC of the day after placement.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobs.domain.instruments import get_instrument
from jobs.domain.sessions import day_order_end, describe_day_end

SPY = get_instrument("SPY")
BTC = get_instrument("BTC/USDT")
NEW_YORK_WINTER = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(("placed", "end"), [
    (datetime(2026, 11, 25, 15, 0, 0, 123456, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)),
    (datetime(2026, 11, 25, 0, 0, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)),
    (datetime(2026, 11, 25, 23, 59, 59, 999999, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)),
    (datetime(2026, 12, 31, 22, 0, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    # 20:00 on the 25th in New York is already the 26th in UTC: the UTC day counts
    (datetime(2026, 11, 25, 20, 0, tzinfo=NEW_YORK_WINTER), datetime(2026, 11, 27, tzinfo=UTC)),
])
def test_a_crypto_day_order_ends_at_midnight_utc_after_its_placement(placed, end):
    assert day_order_end(BTC, placed) == end
    assert describe_day_end(BTC, end) == "the end of its UTC day (00:00 UTC)"


@pytest.mark.parametrize(("placed", "end", "said"), [
    # a regular Wednesday: 16:00 New York is 21:00 UTC in winter
    (datetime(2026, 11, 25, 15, 0, 30, tzinfo=UTC), datetime(2026, 11, 25, 21, 0, tzinfo=UTC),
     "the session end (16:00 New York)"),
    # the day after Thanksgiving closes at 13:00
    (datetime(2026, 11, 27, 15, 0, tzinfo=UTC), datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
     "the session end (13:00 New York, an early close)"),
    # summer time: 16:00 New York is 20:00 UTC
    (datetime(2026, 7, 14, 14, 0, tzinfo=UTC), datetime(2026, 7, 14, 20, 0, tzinfo=UTC),
     "the session end (16:00 New York)"),
    # before the open: that day's session; after the close: the next session's
    (datetime(2026, 11, 24, 12, 0, tzinfo=UTC), datetime(2026, 11, 24, 21, 0, tzinfo=UTC),
     "the session end (16:00 New York)"),
    (datetime(2026, 11, 24, 21, 0, tzinfo=UTC), datetime(2026, 11, 25, 21, 0, tzinfo=UTC),
     "the session end (16:00 New York)"),
    # placed on Saturday, or on Thanksgiving: the next trading day's close
    (datetime(2026, 11, 21, 15, 0, tzinfo=UTC), datetime(2026, 11, 23, 21, 0, tzinfo=UTC),
     "the session end (16:00 New York)"),
    (datetime(2026, 11, 26, 15, 0, tzinfo=UTC), datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
     "the session end (13:00 New York, an early close)"),
])
def test_a_spy_day_order_ends_at_its_nyse_session_close(placed, end, said):
    assert day_order_end(SPY, placed) == end
    assert describe_day_end(SPY, end) == said


def test_a_naive_placement_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        day_order_end(BTC, datetime(2026, 11, 25, 15, 0))
