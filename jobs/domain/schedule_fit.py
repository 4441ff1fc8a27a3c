"""Whether a DCA schedule's buys can pass the risk check at all, judged when it is created or changed.

Why: every fire is a market buy that passes the normal pre-trade check (jobs/domain/risk.py). A
schedule whose amount is above the max order notional, whose symbol is outside the allowlist, or
whose fires all fall while its market is closed was accepted without a word, and each fire was
then refused, visible only in the audit log. What can never pass is refused here (`refusal`);
what may not pass (some fires outside the session) is a warning for the tool's answer. Funds are
a warning only, judged by the caller: they change with every trade.

Pure: the caller passes `now`; fire times come from jobs/domain/schedule_clock.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from jobs.domain.instruments import Instrument
from jobs.domain.risk import RiskLimits
from jobs.domain.schedule_clock import next_fire_after
from jobs.domain.sessions import SessionStatus, describe_open, exchange_name, market_session

FIRES_CHECKED = 20  # the next fires looked at one by one (each a calendar lookup, ~1 ms)
SPREAD_STEP, SPREAD_SPAN = timedelta(hours=3), timedelta(days=7)  # and one every 3 h for a week
HORIZON = timedelta(days=400)  # fires further out than this are not judged (a yearly cron: one or two)


@dataclass(frozen=True, slots=True)
class ScheduleFit:
    refusal: str | None = None  # why no fire could ever pass; None if some can
    warnings: list[str] = field(default_factory=list)  # what may stop some fires


def judge_schedule(inst: Instrument, quote_amount: Decimal, *, cron: str | None, interval_s: int | None,
                   anchor: datetime, limits: RiskLimits, now: datetime) -> ScheduleFit:
    """Refuse what every fire's risk check would refuse; warn about fires outside the session."""
    refusals: list[str] = []
    if quote_amount > limits.max_order_notional:
        refusals.append(
            f"quote_amount {quote_amount} {inst.quote} is above the max order notional "
            f"{limits.max_order_notional} {inst.quote} (TRADINGD_MAX_ORDER_NOTIONAL), so every fire would be "
            f"refused: use at most {limits.max_order_notional}")
    if inst.symbol not in limits.symbol_allowlist:
        allowed = ", ".join(sorted(limits.symbol_allowlist)) or "none"
        refusals.append(f"{inst.symbol} is not in the symbol allowlist ({allowed}; "
                        f"TRADINGD_SYMBOL_ALLOWLIST), so every fire would be refused")
    warnings: list[str] = []
    if limits.enforce_market_hours and inst.exchange_calendar is not None:
        closed, warning = _session_fit(inst, cron=cron, interval_s=interval_s, anchor=anchor, now=now)
        if closed:
            refusals.append(closed)
        if warning:
            warnings.append(warning)
    return ScheduleFit("; ".join(refusals) or None, warnings)


def _session_fit(inst: Instrument, *, cron: str | None, interval_s: int | None, anchor: datetime,
                 now: datetime) -> tuple[str | None, str | None]:
    """(refusal, warning) for an instrument with a market calendar.

    Looked at: the next FIRES_CHECKED fires, and the first fire after every SPREAD_STEP over the
    next SPREAD_SPAN (a 60 s interval created at 15:00 has its next 20 fires in session, but not
    its nightly ones). All in session is fine; some closed is a warning. If none is in session,
    the search jumps from the first fire to the first fire at or after the market's next open
    (every fire in between is closed too), and on, so a 60 s interval created on a Saturday
    finds Monday's open; if it finds none within HORIZON, refuse.
    """
    assert inst.exchange_calendar is not None
    exchange = exchange_name(inst.exchange_calendar)
    times: set[datetime] = set()
    t = next_fire_after(now, cron=cron, interval_s=interval_s, anchor=anchor)
    while len(times) < FIRES_CHECKED and t - now <= HORIZON:
        times.add(t)
        t = next_fire_after(t, cron=cron, interval_s=interval_s, anchor=anchor)
    for k in range(1, SPREAD_SPAN // SPREAD_STEP + 1):
        t = next_fire_after(now + k * SPREAD_STEP, cron=cron, interval_s=interval_s, anchor=anchor)
        if t - now <= min(HORIZON, SPREAD_SPAN):
            times.add(t)
    if not times:
        return None, None
    fires = [(t, market_session(inst, t)) for t in sorted(times)]
    closed = [(t, s) for t, s in fires if not s.is_open]
    if not closed:
        return None, None
    first_t, first_s = closed[0]
    example = f"{first_t:%a %Y-%m-%d %H:%M} UTC ({first_s.closed_because})"
    if len(closed) < len(fires):
        return None, (f"some of this schedule's fires fall outside the {exchange} regular session (the next "
                      f"one: {example}); those buys will be refused")
    opened = _first_fire_in_session(inst, fires[0], cron=cron, interval_s=interval_s, anchor=anchor, now=now)
    if opened is not None:
        return None, (f"the next fires fall outside the {exchange} regular session (the first: {example}) "
                      f"and will be refused; the first fire in session is at {opened:%a %Y-%m-%d %H:%M} UTC")
    return (f"{inst.symbol} trades only in the {exchange} regular session and none of this schedule's fires "
            f"in the next {HORIZON.days} days falls in it (the next: {example}; the market opens "
            f"{describe_open(first_s)}): choose a cron in session hours on trading days, e.g. "
            f"'0 15 * * mon-fri', or ask the operator to set TRADINGD_ENFORCE_MARKET_HOURS=false"), None


def _first_fire_in_session(inst: Instrument, last: tuple[datetime, SessionStatus], *, cron: str | None,
                           interval_s: int | None, anchor: datetime, now: datetime) -> datetime | None:
    t, status = last
    for _ in range(FIRES_CHECKED):
        if status.next_open is None:
            return None
        t = next_fire_after(status.next_open - timedelta(microseconds=1), cron=cron, interval_s=interval_s,
                            anchor=anchor)
        if t - now > HORIZON:
            return None
        status = market_session(inst, t)
        if status.is_open:
            return t
    return None
