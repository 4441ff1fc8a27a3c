"""The ccxt venue's rate-limit governor (jobs/venues/ccxt/governor.py): against the local fake Binance
exchange's request-weight limit and its forced 429/418 answers, and on a hand-moved clock.

The fake counts every request's weight per calendar minute and answers 429 past its limit (418 to a
client that keeps going), so "never over the limit" is measured by the exchange's side, and a control
burst without the governor shows the same burst does break the limit.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from jobs.venues.base import VenueUnavailable
from jobs.venues.ccxt.governor import RateGovernor, RateLimited
from tests.fakes.binance_spot import FakeBinanceSpot, ccxt_binance, fake_binance  # noqa: F401 (a fixture)
from tests.venues.test_conformance_ccxt import build_ccxt_venue, live_settings

pytestmark = pytest.mark.timeout(90)

LIMIT = 200  # request weight per minute, the fake's and the governor's
ACCOUNT_WEIGHT = 20  # GET /api/v3/account


async def test_a_burst_stays_under_the_exchange_limit_and_is_refused_before_it() -> None:
    fake = FakeBinanceSpot(weight_limit=LIMIT)
    await fake.start()
    venue = build_ccxt_venue(live_settings(fake, weight_limit=LIMIT, slow_down_at=0.5, max_wait_s=1.0))
    try:
        sent = refused = 0
        for _ in range(30):  # 600 weight asked for: three times the limit
            try:
                await venue.balances()
                sent += 1
            except RateLimited:
                refused += 1
                break
        assert refused == 1 and sent >= LIMIT // ACCOUNT_WEIGHT // 2, (sent, refused)
        assert fake.limiter.throttled == 0 and fake.limiter.banned == 0
        assert fake.limiter.peak_weight <= LIMIT, fake.limiter.peak_weight
        assert venue.governor.used_weight() == fake.limiter.used_weight  # read from X-MBX-USED-WEIGHT-1M
        assert venue.governor.paused_s > 0  # past half the limit, requests were spaced out
    finally:
        await venue.close()
        await fake.stop()

    # control: the same exchange and burst without our governor (ccxt's limiter alone, at its
    # default pace) breaks the limit, so the assertions above can fail
    fake = FakeBinanceSpot(weight_limit=LIMIT)
    await fake.start()
    raw = ccxt_binance(fake, enableRateLimit=True)
    try:
        with pytest.raises(Exception, match=r"429|Too much request weight"):
            for _ in range(25):  # 500 weight: over 200 in one minute however the minutes split it
                await raw.fetch_balance()
        assert fake.limiter.throttled == 1
    finally:
        await raw.close()
        await fake.stop()


async def test_a_forced_429_stops_every_request_until_retry_after(fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    venue = build_ccxt_venue(live_settings(fake_binance, max_wait_s=0.2))
    try:
        await venue.balances()
        fake_binance.faults.fail_next(429, path="/api/v3/account", retry_after_s=2)
        hit = time.monotonic()
        with pytest.raises(VenueUnavailable, match="rate limited"):
            await venue.balances()
        before = sum(fake_binance.limiter.requests.values())
        for call in (venue.balances, venue.open_orders, lambda: venue.get_order("any-id")):
            with pytest.raises(RateLimited):  # nothing sent, by any caller, for any endpoint
                await call()
        assert sum(fake_binance.limiter.requests.values()) == before
        venue.governor.max_wait_s = 5.0  # a caller that may wait: sent once Retry-After has passed
        balances = await venue.balances()
        assert time.monotonic() - hit >= 1.9
        assert {b.asset for b in balances} >= {"BTC", "USDT"}
        assert sum(fake_binance.limiter.requests.values()) == before + 1
        assert fake_binance.limiter.banned == 0 and venue.governor.throttled == 1
    finally:
        await venue.close()


async def test_a_418_pauses_too_and_an_order_is_refused_not_sent(fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    from jobs.venues.base import OrderRequest

    venue = build_ccxt_venue(live_settings(fake_binance, max_wait_s=0.2))
    try:
        fake_binance.faults.fail_next(418, retry_after_s=30)
        with pytest.raises(VenueUnavailable):
            await venue.balances()
        with pytest.raises(RateLimited, match="nothing was sent"):
            await venue.submit_order(OrderRequest("gov-418-1", "BTC/USDT", "buy", "market", "gtc",
                                                  qty=Decimal("0.001")))
        assert not fake_binance.book.orders
        assert 29 < venue.governor.paused_for <= 30
    finally:
        await venue.close()


async def test_backoff_doubles_without_retry_after_and_resets_on_success() -> None:
    now = [1000.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    g = RateGovernor("x", 6000, 0.7, max_wait_s=10.0, clock=lambda: now[0], wall=lambda: 30.0, sleep=sleep)
    g.observe(429, {})
    assert g.paused_for == 1.0
    now[0] += 1.0
    g.observe(429, {})
    assert g.paused_for == 2.0
    await g.admit()  # waits the pause out, then goes
    assert slept == [2.0]
    g.done()
    g.observe(200, {"X-MBX-USED-WEIGHT-1M": "10"})
    g.observe(429, {})
    assert g.paused_for == 1.0  # a success in between: from 1 s again
    g.observe(418, {"Retry-After": "120"})
    assert g.paused_for == 120.0
    with pytest.raises(RateLimited):
        await g.admit()


async def test_pacing_spreads_the_rest_of_the_minute_and_waits_for_the_next_near_the_limit() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    g = RateGovernor("x", 1000, 0.5, max_wait_s=60.0, clock=lambda: now[0], wall=lambda: 30.0, sleep=sleep)
    g.observe(200, {"x-mbx-used-weight-1m": "400"})
    await g.admit()
    assert slept == []  # under half the limit: no wait
    g.done()
    g.observe(200, {"x-mbx-used-weight-1m": "750"})
    await g.admit()
    assert slept == [pytest.approx(30.0 / 200)]  # 30 s left, 200 weight left before the hard stop
    g.done()
    g.observe(200, {"x-mbx-used-weight-1m": "960"})
    slept.clear()
    g.max_wait_s = 1.0
    with pytest.raises(RateLimited):  # 96 %: only the next minute, 30 s away
        await g.admit()
    assert slept == []
