# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""System health, judged in one place from what Redis holds, so every report agrees.

Why: the MCP `health` tool (served by the bridge) and the daemon's /health used to judge
separately, from different facts: the bridge said "ok" through a Postgres outage while the
daemon said 503. Now both call `evaluate` on the same `HealthInputs`, read by `read_inputs`:
the daemon's heartbeat (written every second with its database probe, feed and view state),
the worker's heartbeat (with its retrying jobs and database outage, if it reports them), the
view's ready/rebuilding markers, the quotes, the trading state and the arq queue's oldest job.
The quotes judged are every symbol a feed serves, by venue (the callers pass the venue registry's
`symbols_by_venue`: TRADINGD_SYMBOLS and each live venue's SYMBOLS), so a live venue's symbol
whose quotes stopped is named, with its venue.
The daemon passes its own, fresher heartbeat in place of the stored one; otherwise the two
reports differ only by the up to one second between heartbeats.

Status: "down" when a store is unreachable (nothing can be accepted durably); "degraded" for
every other problem; "ok" with none. Problems are plain sentences an assistant can relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from storage.state import keys
from storage.state.views import QuoteView, ScheduleView, TradingStateView

HEARTBEAT_STALE_S = 5.0  # the daemon beats every 1 s and the worker every 1 s: five missed beats
COMMANDS_WAITING_WARN_S = 10.0  # a queued command should start within a second or two
SCHEDULE_FAILURES_WARN = 3  # runs in a row that failed: the schedule needs the user's attention
READ_TIMEOUT_S = 1.5  # a silent Redis must not hang a health report


class FeedStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    symbol: str
    venue: str | None = None  # the venue whose market it is (None: the caller did not say)
    has_quote: bool
    age_s: float | None
    stale: bool


class HealthInputs(BaseModel):
    """Everything `evaluate` judges; `redis_error` set means nothing else could be read."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    now: datetime
    redis_error: str | None = None
    daemon: dict[str, Any] | None = None
    worker: dict[str, Any] | None = None
    view_ready: bool = False
    view_rebuilding: bool = False
    trading_state: TradingStateView | None = None
    quotes: dict[str, QuoteView | None] = {}
    venues: dict[str, str] = {}  # symbol -> the venue whose feed serves it
    commands_waiting: int = 0
    oldest_waiting_s: float | None = None
    schedules: list[ScheduleView] = []


class HealthReport(BaseModel):
    status: Literal["ok", "degraded", "down"]
    problems: list[str]
    # database, redis, view, daemon, worker, feed, commands, schedules: "ok" or what is wrong
    checks: dict[str, str]
    feeds: list[FeedStatus]
    trading_state: str | None
    trading_state_reason: str | None
    commands_waiting: int
    oldest_waiting_s: float | None
    time: datetime


def _age_s(beat: dict[str, Any] | None, now: datetime) -> float | None:
    if not beat or not beat.get("at"):
        return None
    try:
        return max(0.0, (now - datetime.fromisoformat(str(beat["at"]))).total_seconds())
    except ValueError:
        return None


def evaluate(inp: HealthInputs, *, stale_after_s: float, heartbeat_stale_s: float = HEARTBEAT_STALE_S,
             commands_waiting_warn_s: float = COMMANDS_WAITING_WARN_S) -> HealthReport:
    """Judge `inp`: which problems there are, and ok / degraded / down."""
    now = inp.now
    if inp.redis_error is not None:
        problem = f"Redis unreachable ({inp.redis_error}): no command can be queued and no state read"
        return HealthReport(status="down", problems=[problem], checks={"redis": "unreachable"}, feeds=[],
                            trading_state=None, trading_state_reason=None, commands_waiting=0,
                            oldest_waiting_s=None, time=now)
    problems: list[str] = []
    down = False
    checks = {"redis": "ok"}

    # the daemon: alive, and what its database probe says
    age = _age_s(inp.daemon, now)
    db_problems: list[str] = []
    if age is None or age > heartbeat_stale_s:
        checks["daemon"] = "down"
        problems.append("the daemon is down: no heartbeat" + (f" for {age:.0f} s" if age is not None else "")
                        + " (no market data, scheduled buys or state-view repair until it is back)")
    else:
        checks["daemon"] = "ok"
        db = (inp.daemon or {}).get("db") or {}
        if db.get("ok") is False:
            since = f" since {db['down_since']}" if db.get("down_since") else ""
            db_problems.append(f"the database is unreachable{since} (the daemon's probe: "
                               f"{db.get('error') or 'no answer'})")

    # the worker: alive, failing jobs, its own view of the database
    age = _age_s(inp.worker, now)
    w = inp.worker or {}
    if age is None or age > heartbeat_stale_s:
        checks["worker"] = "down"
        problems.append("the worker is down: no heartbeat" + (f" for {age:.0f} s" if age is not None else "")
                        + " (queued commands wait until it is back)")
    else:
        retrying = int(w.get("jobs_retrying") or 0)
        if retrying:
            checks["worker"] = "failing jobs"
            last = f" (last error: {str(w['last_error'])[:200]})" if w.get("last_error") else ""
            problems.append(f"the worker is failing jobs: {retrying} waiting to retry{last}")
        elif int(w.get("internal_errors_last_min") or 0):
            checks["worker"] = "failing jobs"
            problems.append(f"the worker ended {w['internal_errors_last_min']} job(s) with an internal "
                            f"error in the last minute (last: {str(w.get('last_error'))[:200]}); their "
                            "commands say why")
        else:
            checks["worker"] = "ok"
        if w.get("db_down_since"):
            db_problems.append(f"the database is unreachable from the worker since {w['db_down_since']}")
    if db_problems:
        down = True
        checks["database"] = "unreachable"
        problems.extend(db_problems)
    else:
        checks["database"] = "ok" if checks["daemon"] == "ok" else "unknown (the daemon probes it)"

    # the state view
    if inp.view_ready:
        checks["view"] = "ok"
    elif inp.view_rebuilding:
        checks["view"] = "rebuilding"
        problems.append("the state view is being rebuilt from Postgres: reads of orders, balances and "
                        "schedules answer 'retry shortly' until it is done")
    else:
        checks["view"] = "not ready"
        problems.append("the state view is not ready (Redis was flushed or restarted); the daemon rebuilds "
                        "it from Postgres")

    # market data
    feeds: list[FeedStatus] = []
    feed_problems: list[str] = []
    feed = (inp.daemon or {}).get("feed")
    connected = feed.get("connected") if isinstance(feed, dict) else None
    if checks["daemon"] == "ok" and connected is False:
        feed_problems.append("the market data feed is disconnected")
    for symbol, q in inp.quotes.items():
        venue = inp.venues.get(symbol)
        named = f"{symbol} ({venue})" if venue else symbol
        if q is None:
            feeds.append(FeedStatus(symbol=symbol, venue=venue, has_quote=False, age_s=None, stale=True))
            feed_problems.append(f"no quote for {named} yet")
            continue
        stale = q.too_old(now, stale_after_s)
        feeds.append(FeedStatus(symbol=symbol, venue=venue, has_quote=True, age_s=round(q.age_s(now), 3),
                                stale=stale))
        if stale:
            feed_problems.append(f"the feed is stale: the quote for {named} is {q.age_s(now):.1f} s old")
    checks["feed"] = "stale" if feed_problems else "ok"
    problems.extend(feed_problems)

    # commands waiting in the queue
    if inp.oldest_waiting_s is not None and inp.oldest_waiting_s > commands_waiting_warn_s:
        checks["commands"] = "waiting"
        problems.append(f"{inp.commands_waiting} command(s) waiting in the queue, the oldest for "
                        f"{inp.oldest_waiting_s:.0f} s (expected to start within "
                        f"{commands_waiting_warn_s:g} s)")
    else:
        checks["commands"] = "ok"

    # schedules whose runs keep failing (each fire refused: funds, market closed, price...)
    failing = [s for s in inp.schedules
               if s.status == "active" and s.consecutive_failures >= SCHEDULE_FAILURES_WARN]
    checks["schedules"] = "failing" if failing else "ok"
    for s in failing:
        problems.append(f"schedule {s.schedule_id} ({s.name[:60]}) failed its last {s.consecutive_failures} "
                        f"runs in a row (last error: {(s.last_error or 'none recorded')[:200]}); change or "
                        f"pause it with update_dca_schedule")

    ts = inp.trading_state
    if ts is not None and ts.state != "ACTIVE":
        problems.append(f"trading is {ts.state}" + (f": {ts.reason}" if ts.reason else ""))
    status: Literal["ok", "degraded", "down"] = "down" if down else ("degraded" if problems else "ok")
    return HealthReport(status=status, problems=problems, checks=checks, feeds=feeds,
                        trading_state=ts.state if ts else None,
                        trading_state_reason=ts.reason if ts else None,
                        commands_waiting=inp.commands_waiting, oldest_waiting_s=inp.oldest_waiting_s,
                        time=now)


# KEYS: the arq queue. ARGV: now (ms), arq's in-progress key prefix. Among the jobs due by now
# (oldest first, at most 1000), those no worker runs: how many, and the oldest one's score.
_WAITING = """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, 1000)
local waiting, oldest = 0, false
for i = 1, #due, 2 do
    if redis.call('exists', ARGV[2] .. due[i]) == 0 then
        waiting = waiting + 1
        if not oldest then oldest = due[i + 1] end
    end
end
return {waiting, oldest}
"""


Symbols = Sequence[str] | Mapping[str, Sequence[str]]  # the symbols, or venue -> its symbols


def venue_of_symbols(symbols: Symbols) -> dict[str, str | None]:
    """symbol -> venue (None when given as a plain list), each symbol once, in the given order."""
    if isinstance(symbols, Mapping):
        return {s: venue for venue, listed in symbols.items() for s in listed}
    return dict.fromkeys(symbols)


async def read_inputs(redis: Redis, *, symbols: Symbols, queue_name: str) -> HealthInputs:
    """What `evaluate` needs, in one round trip (`symbols`: whose quotes to judge, best by venue).
    Raises what Redis raises (the caller reports Redis unreachable: see `inputs_or_outage`)."""
    venue_of = venue_of_symbols(symbols)
    judged = list(venue_of)
    now = datetime.now(UTC)
    fixed = [keys.heartbeat("daemon"), keys.heartbeat("worker"), keys.STATE_READY, keys.STATE_REBUILDING,
             keys.TRADING_STATE]
    now_ms = int(now.timestamp() * 1000)
    async with redis.pipeline(transaction=False) as p:
        p.mget([*fixed, *(keys.quote(s) for s in judged)])
        # deferred jobs (scored in the future) are not waiting yet, running ones no longer
        p.eval(_WAITING, 1, queue_name, str(now_ms), keys.ARQ_IN_PROGRESS_PREFIX)
        p.hvals(keys.SCHEDULES)
        raws, (waiting, oldest), schedules = await p.execute()
    daemon, worker, ready, rebuilding, trading = raws[:5]
    oldest_s = None if oldest is None else max(0.0, (now_ms - float(oldest)) / 1000)
    return HealthInputs(
        now=now, daemon=orjson.loads(daemon) if daemon else None,
        worker=orjson.loads(worker) if worker else None,
        view_ready=ready is not None, view_rebuilding=rebuilding is not None,
        trading_state=TradingStateView.model_validate_json(trading) if trading and ready else None,
        quotes={s: (QuoteView.model_validate_json(r) if r else None)
                for s, r in zip(judged, raws[5:], strict=True)},
        venues={s: v for s, v in venue_of.items() if v is not None},
        commands_waiting=int(waiting), oldest_waiting_s=oldest_s,
        schedules=_schedules(schedules) if ready else [])


def _schedules(raws: list[bytes]) -> list[ScheduleView]:
    """The view's schedules; one that does not parse is left out (health must answer, not raise)."""
    out = []
    for raw in raws:
        try:
            out.append(ScheduleView.model_validate_json(raw))
        except ValueError:
            continue
    return out


async def inputs_or_outage(redis: Redis, *, symbols: Symbols, queue_name: str,
                           timeout_s: float = READ_TIMEOUT_S) -> HealthInputs:
    """`read_inputs`, or inputs that say Redis is unreachable (refused, dropped, or silent for
    `timeout_s`): a health report must answer, not raise or hang, when Redis is down."""
    try:
        async with asyncio.timeout(timeout_s):
            return await read_inputs(redis, symbols=symbols, queue_name=queue_name)
    except (RedisError, OSError, TimeoutError) as e:
        reason = "no answer" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {str(e)[:120]}"
        return HealthInputs(now=datetime.now(UTC), redis_error=reason)
