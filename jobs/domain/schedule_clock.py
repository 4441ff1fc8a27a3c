"""When a DCA schedule fires, and what happens to fires missed while the daemon was down.

Missed-fire policy (coalesce within a grace window), also in docs/dca-schedules.md:
  * every fire time that passed while nobody was watching is "missed";
  * if the most recent missed fire is no older than the schedule's misfire_grace_s, exactly
    one buy runs for it (several missed fires coalesce into one buy, never one per fire);
  * every other missed fire is recorded as a run with status skipped_missed, so nothing is
    lost silently;
  * the schedule then continues from the first fire time after now.

Pure functions: APScheduler's CronTrigger is used only as a calculator of fire times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

MAX_RECORDED_SKIPS = 500

# Where the scheduling code reads "now" (the daemon's clock, the schedule commands): a parameter,
# so a test can run the missed-fire policy at virtual times instead of sleeping through real ones.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock, timezone-aware UTC: every Clock parameter's default."""
    return datetime.now(UTC)


class ScheduleSpecError(ValueError):
    pass


FIRE_HORIZON = timedelta(days=5 * 366)  # a cron must fire within this long from now to be accepted


def parse_cron(expr: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone=UTC)
    except ValueError as e:
        raise ScheduleSpecError(
            f"cron {_shown(expr)!r} is not a valid 5-field crontab ({_shown(str(e), 80)}); "
            f"e.g. '0 9 * * mon' is Mondays 09:00 UTC") from None


def validate_spec(cron: str | None, interval_s: int | None, *, now: datetime | None = None) -> None:
    """Refuse timing that cannot be stored or run: both or neither given, a cron that does not
    parse, or one that never fires (e.g. '0 0 30 2 *', February 30th) within FIRE_HORIZON.

    Why the horizon check here: a schedule whose next fire time cannot be computed used to be
    accepted by the bridge and then fail in the worker, leaving its command without an answer.
    """
    if (cron is None) == (interval_s is None):
        raise ScheduleSpecError("give exactly one of cron (5-field crontab, UTC) or interval_s")
    if cron is not None:
        trigger = parse_cron(cron)
        start = datetime.now(UTC) if now is None else now
        first = trigger.get_next_fire_time(None, start)
        if first is None or first - start > FIRE_HORIZON:
            raise ScheduleSpecError(
                f"cron {_shown(cron)!r} does not fire within {FIRE_HORIZON.days // 366} years (a date that "
                f"does not exist, such as February 30th?); give a day and month that occur")
    if interval_s is not None and interval_s < 1:
        raise ScheduleSpecError("interval_s must be at least 1 second")


def _shown(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def next_fire_after(after: datetime, *, cron: str | None, interval_s: int | None,
                    anchor: datetime) -> datetime:
    """The first fire time strictly after `after`. Interval schedules fire at anchor + k*interval."""
    if interval_s is not None:
        if after < anchor:
            return anchor
        k = int((after - anchor).total_seconds() // interval_s) + 1
        return anchor + timedelta(seconds=k * interval_s)
    assert cron is not None
    trigger = parse_cron(cron)
    nxt = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if nxt is None:
        raise ScheduleSpecError(f"cron {cron!r} never fires again")
    return nxt.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CatchUpPlan:
    run: datetime | None  # the one missed fire to buy for now, if any
    skipped: list[datetime] = field(default_factory=list)  # missed fires recorded, not bought
    skipped_total: int = 0
    next_fire_at: datetime | None = None


def plan_catch_up(next_fire_at: datetime, now: datetime, *, cron: str | None, interval_s: int | None,
                  anchor: datetime, grace_s: int) -> CatchUpPlan:
    """Apply the missed-fire policy to a schedule whose next fire time is in the past."""
    if next_fire_at > now:
        return CatchUpPlan(None, [], 0, next_fire_at)
    missed: list[datetime] = []
    total = 0
    t = next_fire_at
    while t <= now:
        total += 1
        missed.append(t)
        if len(missed) > MAX_RECORDED_SKIPS + 1:
            missed.pop(0)
        t = next_fire_after(t, cron=cron, interval_s=interval_s, anchor=anchor)
    latest = missed[-1]
    if (now - latest).total_seconds() <= grace_s:
        return CatchUpPlan(latest, missed[:-1][-MAX_RECORDED_SKIPS:], total - 1, t)
    return CatchUpPlan(None, missed[-MAX_RECORDED_SKIPS:], total, t)
