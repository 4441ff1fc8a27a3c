"""Exchange sessions at fixed instants: SPY only in the NYSE regular session, crypto 24/7.

Every instant is given, never read from the clock, so these hold on any day the suite runs.
NYSE hours in November 2026 (EST, UTC-5): 09:30-16:00 New York = 14:30-21:00 UTC; the day after
Thanksgiving closes early at 13:00 New York = 18:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from jobs.domain.instruments import get_instrument
from jobs.domain.orders import OrderSpec
from jobs.domain.risk import RiskLimits, check_order
from jobs.domain.sessions import describe_open, market_session
from jobs.resources import build_resources
from storage.settings import load_settings

SPY = get_instrument("SPY")
CRYPTO = [get_instrument("BTC/USDT"), get_instrument("ETH/USDT")]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


SATURDAY = at("2026-11-21T16:00:00")
THANKSGIVING = at("2026-11-26T15:00:00")
BLACK_FRIDAY_OPEN = at("2026-11-27T15:00:00")
BLACK_FRIDAY_AFTER_EARLY_CLOSE = at("2026-11-27T18:30:00")
TUESDAY_OPEN = at("2026-11-24T15:00:00")
INSTANTS = [SATURDAY, THANKSGIVING, BLACK_FRIDAY_OPEN, BLACK_FRIDAY_AFTER_EARLY_CLOSE, TUESDAY_OPEN,
            at("2026-11-24T03:00:00")]


# --- sessions.py

def test_saturday_is_closed_and_opens_monday_at_the_bell():
    s = market_session(SPY, SATURDAY)
    assert not s.is_open
    assert s.next_open == at("2026-11-23T14:30:00")
    assert s.closed_because == "Saturday"
    assert describe_open(s) == "Mon 2026-11-23 14:30 UTC (09:30 New York)"


def test_thanksgiving_is_a_holiday_and_the_next_open_is_the_day_after():
    s = market_session(SPY, THANKSGIVING)
    assert not s.is_open
    assert s.closed_because == "holiday: Thanksgiving"
    assert s.next_open == at("2026-11-27T14:30:00")


@pytest.mark.parametrize("instant", [BLACK_FRIDAY_OPEN, at("2026-11-27T17:30:00"), at("2026-11-27T17:59:59")])
def test_day_after_thanksgiving_is_open_until_the_13_00_early_close(instant):
    # 17:30 UTC is 12:30 New York: still before the early close
    assert market_session(SPY, instant).is_open


@pytest.mark.parametrize("instant", [at("2026-11-27T18:00:00"), BLACK_FRIDAY_AFTER_EARLY_CLOSE])
def test_day_after_thanksgiving_is_closed_after_the_early_close(instant):
    s = market_session(SPY, instant)
    assert not s.is_open
    assert s.closed_because == "after the 13:00 New York early close"
    assert s.next_open == at("2026-11-30T14:30:00")


def test_a_regular_tuesday_is_open_during_the_session_and_closed_around_it():
    assert market_session(SPY, TUESDAY_OPEN).is_open
    assert market_session(SPY, at("2026-11-24T14:30:00")).is_open
    assert market_session(SPY, at("2026-11-24T20:30:00")).is_open  # 15:30 New York: not an early close day
    before = market_session(SPY, at("2026-11-24T14:29:00"))
    assert not before.is_open and before.closed_because == "before the 09:30 New York open"
    assert before.next_open == at("2026-11-24T14:30:00")
    after = market_session(SPY, at("2026-11-24T21:00:00"))
    assert not after.is_open and after.closed_because == "after the 16:00 New York close"
    assert after.next_open == at("2026-11-25T14:30:00")


def test_summer_time_shifts_the_session_in_utc():
    # July: EDT (UTC-4), so the 09:30 New York open is 13:30 UTC
    assert market_session(SPY, at("2026-07-07T13:30:00")).is_open
    closed = market_session(SPY, at("2026-07-07T13:29:00"))
    assert not closed.is_open
    assert describe_open(closed) == "Tue 2026-07-07 13:30 UTC (09:30 New York)"


def test_any_timezone_aware_instant_is_compared_in_utc_and_naive_ones_are_refused():
    new_york = timezone(timedelta(hours=-5))
    assert market_session(SPY, datetime(2026, 11, 24, 10, 0, tzinfo=new_york)).is_open
    with pytest.raises(ValueError, match="timezone-aware"):
        market_session(SPY, datetime(2026, 11, 24, 15, 0))


@pytest.mark.parametrize("inst", CRYPTO, ids=lambda i: i.symbol)
@pytest.mark.parametrize("instant", INSTANTS)
def test_crypto_is_always_open(inst, instant):
    s = market_session(inst, instant)
    assert s.is_open and s.next_open is None


# --- the risk check

LIMITS = RiskLimits(Decimal("25000"), frozenset({"BTC/USDT", "ETH/USDT", "SPY"}))


def check(symbol: str, now: datetime, limits: RiskLimits = LIMITS):
    return check_order(OrderSpec(symbol, "buy", "market", qty=Decimal("1")), get_instrument(symbol),
                       trading_state="ACTIVE", limits=limits, reference_price=Decimal("580.02"),
                       available_quote=Decimal("100000"), available_base=Decimal(0),
                       fee_rate=Decimal("0.001"), now=now)


def test_check_order_refuses_spy_while_nyse_is_closed_and_names_the_next_open():
    verdict = check("SPY", SATURDAY)
    assert not verdict.allowed
    assert verdict.reasons == (
        "SPY trades in the NYSE regular session; the market is closed now (Saturday); it opens "
        "Mon 2026-11-23 14:30 UTC (09:30 New York): place the order then",)
    early = check("SPY", BLACK_FRIDAY_AFTER_EARLY_CLOSE)
    assert not early.allowed
    assert "closed now (after the 13:00 New York early close)" in early.message
    assert "Mon 2026-11-30 14:30 UTC (09:30 New York)" in early.message


@pytest.mark.parametrize("instant", [TUESDAY_OPEN, BLACK_FRIDAY_OPEN])
def test_check_order_allows_spy_in_session(instant):
    verdict = check("SPY", instant)
    assert verdict.allowed, verdict.message


def test_check_order_allows_spy_at_any_time_when_enforcement_is_off():
    off = RiskLimits(LIMITS.max_order_notional, LIMITS.symbol_allowlist, enforce_market_hours=False)
    for instant in (SATURDAY, THANKSGIVING, BLACK_FRIDAY_AFTER_EARLY_CLOSE):
        verdict = check("SPY", instant, off)
        assert verdict.allowed, verdict.message


@pytest.mark.parametrize("instant", INSTANTS)
def test_check_order_never_applies_sessions_to_crypto(instant):
    verdict = check("BTC/USDT", instant)
    assert verdict.allowed, verdict.message


# --- the setting

def test_enforce_market_hours_defaults_on_and_reads_the_environment(monkeypatch):
    monkeypatch.delenv("TRADINGD_ENFORCE_MARKET_HOURS", raising=False)
    assert load_settings().enforce_market_hours is True
    monkeypatch.setenv("TRADINGD_ENFORCE_MARKET_HOURS", "false")
    assert load_settings().enforce_market_hours is False


async def test_the_setting_reaches_the_worker_risk_limits(settings, redis):
    res = build_resources(settings, redis, pool_size=1)
    try:
        assert res.limits.enforce_market_hours is False  # the shared test settings turn it off
        on = build_resources(settings.model_copy(update={"enforce_market_hours": True}), redis, pool_size=1)
        assert on.limits.enforce_market_hours is True
        await on.close()
    finally:
        await res.close()
