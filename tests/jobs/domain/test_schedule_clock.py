"""jobs/domain/schedule_clock.py tested directly: fire times (cron in UTC, interval) and the
missed-fire policy as a pure plan.

The policy (module docstring, docs/dca-schedules.md): every fire time that passed unwatched is
missed; if the most recent one is no older than the grace, exactly one buy runs for it (however
many were missed: they coalesce); every other missed fire is recorded as skipped; the schedule
continues from the first fire time after now. tests/daemon/test_dca_clock_virtual.py drives the
same policy through the daemon's clock against Postgres.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.domain.schedule_clock import (
    MAX_RECORDED_SKIPS,
    CatchUpPlan,
    ScheduleSpecError,
    next_fire_after,
    plan_catch_up,
    validate_spec,
)

ANCHOR = datetime(2025, 1, 1, tzinfo=UTC)
MONDAY_0900 = "0 9 * * mon"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cron_after(after: datetime, cron: str) -> datetime:
    return next_fire_after(after, cron=cron, interval_s=None, anchor=ANCHOR)


def interval_after(after: datetime, interval_s: int, anchor: datetime = ANCHOR) -> datetime:
    return next_fire_after(after, cron=None, interval_s=interval_s, anchor=anchor)


# --- next_fire_after: cron

def test_cron_fires_strictly_after_the_given_time():
    assert cron_after(utc(2025, 1, 6, 8, 59, 59), MONDAY_0900) == utc(2025, 1, 6, 9)  # 6 Jan 2025: a Monday
    assert cron_after(utc(2025, 1, 6, 9), MONDAY_0900) == utc(2025, 1, 13, 9)  # not the same instant again
    assert cron_after(utc(2025, 1, 6, 9, 0, 0, 1), MONDAY_0900) == utc(2025, 1, 13, 9)


def test_cron_is_utc_and_knows_no_daylight_saving():
    """Daily at 09:00 UTC through the US (9 March 2025) and EU (30 March) clock changes: every fire
    24 hours after the last, always 09:00 UTC."""
    t, fires = utc(2025, 3, 1), []
    while t < utc(2025, 4, 5):
        t = cron_after(t, "0 9 * * *")
        fires.append(t)
    assert all(b - a == timedelta(hours=24) for a, b in pairwise(fires))
    assert all((f.hour, f.minute, f.utcoffset()) == (9, 0, timedelta(0)) for f in fires)


def test_a_time_given_in_another_zone_is_the_same_instant_and_the_answer_is_utc():
    berlin = datetime(2025, 3, 30, 10, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 08:30 UTC, the CEST day
    nxt = cron_after(berlin, "0 9 * * *")
    assert nxt == utc(2025, 3, 30, 9) and nxt.tzinfo is UTC


@pytest.mark.parametrize(("cron", "after", "expected"), [
    ("0 0 31 * *", utc(2025, 1, 31), utc(2025, 3, 31)),  # February and its 28 days are skipped
    ("0 0 31 * *", utc(2025, 3, 31), utc(2025, 5, 31)),  # so is April's 30
    ("0 0 last * *", utc(2025, 2, 1), utc(2025, 2, 28)),
    ("0 0 last * *", utc(2028, 2, 1), utc(2028, 2, 29)),  # a leap year
    ("0 0 29 2 *", utc(2025, 3, 1), utc(2028, 2, 29)),
    ("0 0 1 1 *", utc(2025, 12, 31, 23, 59), utc(2026, 1, 1)),  # across the year end
    ("59 23 * * *", utc(2025, 1, 31, 23, 59), utc(2025, 2, 1, 23, 59)),
])
def test_cron_at_month_and_year_ends(cron, after, expected):
    assert cron_after(after, cron) == expected


def test_a_cron_that_never_fires_is_refused_at_creation():
    with pytest.raises(ScheduleSpecError, match="does not fire within 5 years"):
        validate_spec("0 0 30 2 *", None, now=utc(2025, 1, 1))


# --- next_fire_after: interval

@pytest.mark.parametrize(("after", "expected"), [
    (ANCHOR - timedelta(days=3), ANCHOR),  # before the anchor: the anchor is the first fire
    (ANCHOR, ANCHOR + timedelta(hours=1)),  # strictly after
    (ANCHOR + timedelta(minutes=59, seconds=59), ANCHOR + timedelta(hours=1)),
    (ANCHOR + timedelta(hours=1), ANCHOR + timedelta(hours=2)),
    (ANCHOR + timedelta(hours=1, microseconds=1), ANCHOR + timedelta(hours=2)),
    (ANCHOR + timedelta(days=365, minutes=30), ANCHOR + timedelta(days=365, hours=1)),
])
def test_an_interval_fires_at_the_anchor_plus_whole_intervals(after, expected):
    assert interval_after(after, 3600) == expected


# --- plan_catch_up

def weekly_plan(next_fire_at: datetime, now: datetime, grace_s: int) -> CatchUpPlan:
    return plan_catch_up(next_fire_at, now, cron=MONDAY_0900, interval_s=None, anchor=ANCHOR, grace_s=grace_s)


def test_a_schedule_not_yet_due_has_nothing_to_catch_up():
    plan = weekly_plan(utc(2025, 1, 6, 9), utc(2025, 1, 6, 8, 59), 3600)
    assert plan == CatchUpPlan(None, [], 0, utc(2025, 1, 6, 9))


def test_grace_zero_still_buys_a_fire_that_is_due_exactly_now():
    """A restart at the very fire time: the fire is 0 s old, within a grace of 0."""
    plan = weekly_plan(utc(2025, 1, 6, 9), utc(2025, 1, 6, 9), 0)
    assert plan == CatchUpPlan(utc(2025, 1, 6, 9), [], 0, utc(2025, 1, 13, 9))


def test_grace_zero_skips_a_fire_one_second_old():
    plan = weekly_plan(utc(2025, 1, 6, 9), utc(2025, 1, 6, 9, 0, 1), 0)
    assert plan == CatchUpPlan(None, [utc(2025, 1, 6, 9)], 1, utc(2025, 1, 13, 9))


def test_a_three_week_outage_buys_once_for_the_latest_fire_within_the_grace():
    plan = weekly_plan(utc(2025, 1, 6, 9), utc(2025, 1, 20, 10), 3600)  # 20 Jan 09:00 is 1 h old
    assert plan == CatchUpPlan(utc(2025, 1, 20, 9), [utc(2025, 1, 6, 9), utc(2025, 1, 13, 9)], 2,
                               utc(2025, 1, 27, 9))


def test_a_three_week_outage_past_the_grace_skips_every_fire():
    plan = weekly_plan(utc(2025, 1, 6, 9), utc(2025, 1, 20, 10, 0, 1), 3600)  # 1 s too late
    assert plan == CatchUpPlan(None, [utc(2025, 1, 6, 9), utc(2025, 1, 13, 9), utc(2025, 1, 20, 9)], 3,
                               utc(2025, 1, 27, 9))


def test_missed_fires_coalesce_into_one_buy_even_when_the_grace_covers_them_all():
    """Five daily fires missed, a grace of ten days: one buy (the latest), never one per fire."""
    start = ANCHOR + timedelta(days=1)
    plan = plan_catch_up(start, start + timedelta(days=4, hours=2), cron=None, interval_s=86400,
                         anchor=ANCHOR, grace_s=10 * 86400)
    assert plan.run == start + timedelta(days=4)
    assert plan.skipped == [start + timedelta(days=d) for d in range(4)] and plan.skipped_total == 4
    assert plan.next_fire_at == start + timedelta(days=5)


def test_a_monthly_cron_across_month_ends():
    plan = plan_catch_up(utc(2025, 1, 31), utc(2025, 5, 31, 0, 5), cron="0 0 last * *", interval_s=None,
                         anchor=ANCHOR, grace_s=600)
    assert plan.run == utc(2025, 5, 31)
    assert plan.skipped == [utc(2025, 1, 31), utc(2025, 2, 28), utc(2025, 3, 31), utc(2025, 4, 30)]
    assert plan.next_fire_at == utc(2025, 6, 30)


def test_a_long_outage_records_the_most_recent_skips_and_counts_them_all():
    """1,000 one-second fires missed: the count is exact, the skips recorded are the latest
    MAX_RECORDED_SKIPS (a run row each), so a long outage cannot write an unbounded number of rows."""
    now = ANCHOR + timedelta(seconds=999)
    plan = plan_catch_up(ANCHOR, now, cron=None, interval_s=1, anchor=ANCHOR, grace_s=0)
    assert plan.run == now and plan.skipped_total == 999
    assert plan.skipped == [ANCHOR + timedelta(seconds=s) for s in range(999 - MAX_RECORDED_SKIPS, 999)]
    plan = plan_catch_up(ANCHOR, now + timedelta(microseconds=1), cron=None, interval_s=1, anchor=ANCHOR,
                         grace_s=0)
    assert plan.run is None and plan.skipped_total == 1000
    assert plan.skipped == [ANCHOR + timedelta(seconds=s) for s in range(1000 - MAX_RECORDED_SKIPS, 1000)]


@given(interval_s=st.integers(1, 7 * 86400), first_k=st.integers(0, 50), missed=st.integers(1, 1200),
       past_last_s=st.integers(0, 10**6), grace_s=st.integers(0, 3 * 86400))
def test_every_missed_fire_is_bought_once_or_skipped_and_the_schedule_moves_past_now(
        interval_s: int, first_k: int, missed: int, past_last_s: int, grace_s: int):
    """Against the fire times enumerated by hand: each missed fire is either the one buy or a
    skip (counted exactly; recorded if among the latest), the buy is the latest missed fire and
    only within the grace, and the next fire is the first one after now."""
    first = ANCHOR + timedelta(seconds=first_k * interval_s)
    fires = [first + timedelta(seconds=k * interval_s) for k in range(missed)]
    now = fires[-1] + timedelta(seconds=past_last_s % interval_s)  # before the fire after the last
    plan = plan_catch_up(first, now, cron=None, interval_s=interval_s, anchor=ANCHOR, grace_s=grace_s)
    within = (now - fires[-1]).total_seconds() <= grace_s
    assert plan.run == (fires[-1] if within else None)
    unbought = fires[:-1] if within else fires
    assert plan.skipped_total == len(unbought)
    assert plan.skipped == unbought[-MAX_RECORDED_SKIPS:]
    assert plan.next_fire_at == fires[-1] + timedelta(seconds=interval_s) > now
