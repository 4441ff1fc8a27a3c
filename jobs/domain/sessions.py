"""Market sessions: is an instrument's market open at an instant, and if not, when does it next open.

Why: an exchange-listed instrument (SPY on the NYSE) only trades in its exchange's session, and
a paper fill at 3 a.m. on a Sunday is a fill no venue would give. Crypto pairs have no calendar
(`Instrument.exchange_calendar is None`) and trade 24/7. Holidays, ad hoc closures and early
closes come from `exchange_calendars`, kept up to date against the exchanges' own notices:
rules written here by hand would drift.

Pure: the caller passes the instant (`now`, timezone-aware); nothing here reads the clock.
The calendar is built on first use and then kept (importing pandas and building it take ~0.5 s);
the worker and the bridge build it at start-up (`load_calendars`) so no order waits for it. It is built per calendar year asked about
(covering a year either side), so a daemon running across New Year builds one more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from jobs.domain.instruments import Instrument

EXCHANGE_NAMES = {"XNYS": "NYSE"}  # calendar code -> the name people know; others show the code


@dataclass(frozen=True, slots=True)
class SessionStatus:
    is_open: bool
    next_open: datetime | None = None  # UTC; set when closed and the market has a calendar
    closed_because: str | None = None  # "Saturday", "holiday: Thanksgiving", "after the 13:00 early close"
    exchange_tz: ZoneInfo | None = None  # the exchange's local time zone (America/New_York)


ALWAYS_OPEN = SessionStatus(True)


def exchange_name(code: str) -> str:
    return EXCHANGE_NAMES.get(code, code)


def market_session(inst: Instrument, now: datetime) -> SessionStatus:
    """The session state of `inst`'s market at `now` (timezone-aware; any zone, compared in UTC)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("market_session needs a timezone-aware datetime (UTC), got a naive one")
    if inst.exchange_calendar is None:
        return ALWAYS_OPEN
    import pandas as pd

    now = now.astimezone(UTC)
    cal = _calendar(inst.exchange_calendar, now.year)
    ts = pd.Timestamp(now)
    if cal.is_open_on_minute(ts):
        return SessionStatus(True, exchange_tz=cal.tz)
    next_open = cal.next_open(ts).to_pydatetime().astimezone(UTC)
    return SessionStatus(False, next_open, _closed_because(cal, now), cal.tz)


def load_calendars(instruments: list[Instrument], now: datetime) -> None:
    """Build every calendar `instruments` need for `now`'s year, so the first order does not wait
    ~0.5 s for pandas and the calendar (a process calls this once, at start-up)."""
    for inst in instruments:
        market_session(inst, now)


def describe_open(status: SessionStatus) -> str:
    """'Mon 2026-11-23 14:30 UTC (09:30 New York)': when a closed market opens, in UTC and local time."""
    if status.next_open is None:
        return "at an unknown time"
    at = status.next_open.astimezone(UTC)
    text = f"{at:%a %Y-%m-%d %H:%M} UTC"
    if status.exchange_tz is not None:
        local = status.next_open.astimezone(status.exchange_tz)
        text += f" ({local:%H:%M} {_city(status.exchange_tz)})"
    return text


def day_order_end(inst: Instrument, placed_at: datetime) -> datetime:
    """When a `day` order placed at `placed_at` stops being good (UTC).

    Why these rules: a day order lives for one trading session. On an exchange with a calendar
    that is the close of the session it was placed in (the next session's close if it was placed
    while the market was closed), early closes included, as the exchange's calendar knows them.
    A 24/7 market has no session: its day is the UTC calendar day of placement, so the order
    ends at 00:00 UTC of the next day.
    """
    if placed_at.tzinfo is None or placed_at.utcoffset() is None:
        raise ValueError("day_order_end needs a timezone-aware datetime (UTC), got a naive one")
    placed_at = placed_at.astimezone(UTC)
    if inst.exchange_calendar is None:
        day = placed_at.date() + timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    import pandas as pd

    cal = _calendar(inst.exchange_calendar, placed_at.year)
    return cal.next_close(pd.Timestamp(placed_at)).to_pydatetime().astimezone(UTC)


def describe_day_end(inst: Instrument, end: datetime) -> str:
    """'the session end (16:00 New York)', 'the session end (13:00 New York, an early close)' or
    'the end of its UTC day (00:00 UTC)': when a day order ended, in the market's own terms."""
    if inst.exchange_calendar is None:
        return f"the end of its UTC day ({end.astimezone(UTC):%H:%M} UTC)"
    import pandas as pd

    cal = _calendar(inst.exchange_calendar, end.year)
    local = end.astimezone(cal.tz)
    early = ", an early close" if pd.Timestamp(local.date()) in cal.early_closes else ""
    return f"the session end ({local:%H:%M} {_city(cal.tz)}{early})"


def _city(tz: ZoneInfo) -> str:
    return tz.key.rsplit("/", 1)[-1].replace("_", " ")


def _closed_because(cal: Any, now: datetime) -> str:
    """Why the market is closed at `now`, in the exchange's terms (its local date and times)."""
    local = now.astimezone(cal.tz)
    day = local.date()
    if not cal.is_session(day):
        if str(getattr(cal, "weekmask", "1111100"))[day.weekday()] == "0":  # the exchange's weekend
            return f"{local:%A}"
        name = _holiday_name(cal, day)
        return f"holiday: {name}" if name else "holiday"
    import pandas as pd

    session_open = cal.session_open(day).to_pydatetime().astimezone(cal.tz)
    session_close = cal.session_close(day).to_pydatetime().astimezone(cal.tz)
    if local < session_open:
        return f"before the {session_open:%H:%M} {_city(cal.tz)} open"
    if local >= session_close:
        early = " early" if pd.Timestamp(day) in cal.early_closes else ""
        return f"after the {session_close:%H:%M} {_city(cal.tz)}{early} close"
    return "trading break"  # calendars with a lunch break (not XNYS)


def _holiday_name(cal: Any, day: date) -> str | None:
    """The regular holiday's name (Thanksgiving), or None (ad hoc closures have no name)."""
    import pandas as pd

    try:
        names = cal.regular_holidays.holidays(pd.Timestamp(day), pd.Timestamp(day), return_name=True)
        return str(names.iloc[0]) if len(names) else None
    except Exception:  # the name is a nicety; an older or newer API must not break the check
        return None


@lru_cache(maxsize=8)
def _calendar(code: str, year: int) -> Any:
    """The exchange calendar covering `year` with a year either side (built once per code and year)."""
    import exchange_calendars as xcals

    return xcals.get_calendar(code, start=f"{year - 1}-01-01", end=f"{year + 1}-12-31")
