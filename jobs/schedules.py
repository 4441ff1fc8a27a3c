"""DCA schedule commands (create, pause, resume, change, delete) and the scheduled buy itself.

The daemon records each fire as a dca_runs row (unique per schedule and fire time) before it
enqueues `run_scheduled_buy`; the buy's command id is derived from that pair, so a fire that
is enqueued twice or re-run after a crash places one order.

Schedules and runs are read and written through the schedules repository
(storage/repos/schedules.py) as frozen records: a change is a new record (`dataclasses.replace`)
saved inside the effect's transaction, and the saved record is what the state view is fed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from jobs.commands import CommandResult, CreateDcaSchedule, DeleteDcaSchedule, PlaceOrder, UpdateDcaSchedule
from jobs.domain.instruments import UnknownInstrumentError, get_instrument
from jobs.domain.orders import MAX_DECIMALS, MAX_NOTIONAL, MAX_PRICE, OrderSpecError, check_amount
from jobs.domain.schedule_clock import Clock, ScheduleSpecError, next_fire_after, utc_now, validate_spec
from jobs.domain.schedule_fit import ScheduleFit, judge_schedule
from jobs.effects import effect
from jobs.ledger import claim_command, finish_command
from jobs.orders import _result, place_order
from jobs.resources import Resources
from storage.repos import Db, read
from storage.repos.ledger import Ledger
from storage.repos.schedules import RunRecord, ScheduleRecord, Schedules
from storage.state import keys
from storage.state.views import QuoteView
from storage.values import FINAL_COMMAND_STATUSES, ScheduleRunStatus

ScheduleCommand = CreateDcaSchedule | UpdateDcaSchedule | DeleteDcaSchedule
QUOTE_WAIT_S = 10.0  # how long a fire waits for a fresh quote (see fresh_quote)
QUOTE_POLL_S = 0.1
log = logging.getLogger("tradingd.dca")


def fire_command_id(schedule_id: str, fire_time: datetime) -> str:
    return f"dca:{schedule_id}:{fire_time.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"


def _spec_error(cmd: CreateDcaSchedule | UpdateDcaSchedule, row: ScheduleRecord | None,
                now: datetime) -> str | None:
    try:
        symbol = cmd.symbol if isinstance(cmd, CreateDcaSchedule) else row.symbol  # type: ignore[union-attr]
        inst = get_instrument(symbol)
        cron = cmd.cron if (cmd.cron or cmd.interval_s) else (row.cron if row else None)
        interval = cmd.interval_s if (cmd.cron or cmd.interval_s) else (row.interval_s if row else None)
        validate_spec(cron, interval, now=now)
    except (UnknownInstrumentError, ScheduleSpecError) as e:
        return str(e)
    amount = cmd.quote_amount
    try:  # the command model checks these too; a payload queued before that still gets a reason
        if amount is not None:
            check_amount("quote_amount", amount, MAX_NOTIONAL, max_decimals=MAX_DECIMALS)
        if cmd.max_price is not None:
            check_amount("max_price", cmd.max_price, MAX_PRICE, max_decimals=MAX_DECIMALS)
    except OrderSpecError as e:
        return str(e)
    if amount is not None and amount < inst.min_notional:
        return f"quote_amount {amount} is below the minimum order value {inst.min_notional} {inst.quote}"
    return None


async def schedule_command(res: Resources, cmd: ScheduleCommand, *, clock: Clock = utc_now) -> CommandResult:
    """`clock` gives the time the schedule is created or changed at (its anchor and first fire);
    a test passes a virtual one to run the daemon's clock at virtual times."""
    now = clock()
    async with effect(res) as (db, fx):
        schedules = Schedules(db)
        cmd_row = await claim_command(db, cmd)
        if cmd_row.status in FINAL_COMMAND_STATUSES:
            fx.command = cmd_row  # publish it again: a run that died before publishing left the view behind
            return _result(cmd_row)
        row: ScheduleRecord | None = None
        if not isinstance(cmd, CreateDcaSchedule):
            row = await schedules.get(cmd.schedule_id, lock=True)
            if row is None or row.status == "deleted":
                await finish_command(db, fx, cmd.command_id, "rejected",
                                     f"no schedule {cmd.schedule_id!r}; list_dca_schedules shows the ids")
                row = None
                cmd = None  # type: ignore[assignment]
        if cmd is not None:
            error = None if isinstance(cmd, DeleteDcaSchedule) or (
                isinstance(cmd, UpdateDcaSchedule) and cmd.action != "change") else _spec_error(cmd, row, now)
            fit = ScheduleFit()
            if error is None and _activates(cmd):
                fit = _judge(res, cmd, row, now)  # type: ignore[arg-type]
                error = fit.refusal
            warnings = None
            if error is None and _activates(cmd):
                warnings = fit.warnings + await _funds_warnings(db, res, cmd, row)  # type: ignore[arg-type]
            if error:
                await finish_command(db, fx, cmd.command_id, "rejected", error)
            elif isinstance(cmd, CreateDcaSchedule):
                inst = get_instrument(cmd.symbol)
                first_fire = next_fire_after(now, cron=cmd.cron, interval_s=cmd.interval_s, anchor=now)
                row = await schedules.create(ScheduleRecord(
                    id="sch_" + uuid.uuid4().hex[:16], name=cmd.name, venue=res.venue_for(inst.symbol),
                    symbol=inst.symbol,
                    quote_amount=cmd.quote_amount, cron=cmd.cron, interval_s=cmd.interval_s, status="active",
                    misfire_grace_s=cmd.misfire_grace_s if cmd.misfire_grace_s is not None
                    else res.settings.dca_misfire_grace_s,
                    max_price=cmd.max_price, next_fire_at=first_fire, last_fire_at=None,
                    command_id=cmd.command_id, last_outcome=None, last_error=None, consecutive_failures=0,
                    created_at=now, updated_at=now))
                await finish_command(db, fx, cmd.command_id, "succeeded", f"schedule {row.id} created",
                                     schedule_id=row.id, next_fire_at=first_fire.isoformat(),
                                     warnings=warnings or None)
            else:
                assert row is not None
                row = await schedules.save(_updated(row, cmd, now))
                await finish_command(db, fx, cmd.command_id, "succeeded", f"schedule {row.id} {row.status}",
                                     schedule_id=row.id,
                                     next_fire_at=row.next_fire_at.isoformat() if row.next_fire_at else None,
                                     warnings=warnings or None)
        if row is not None:
            fx.schedules.append(row)
    if row is not None:
        await res.redis.publish(keys.SCHEDULES_CHANGED, row.id)
    return _result(fx.command or cmd_row)


def _activates(cmd: ScheduleCommand | None) -> bool:
    """Whether the command makes the schedule buy on new terms: creating, changing or resuming it."""
    return isinstance(cmd, CreateDcaSchedule) or (isinstance(cmd, UpdateDcaSchedule)
                                                  and cmd.action in ("change", "resume"))


def _terms(cmd: CreateDcaSchedule | UpdateDcaSchedule, row: ScheduleRecord | None,
           now: datetime) -> tuple[str, Decimal, str | None, int | None, datetime]:
    """The symbol, amount and timing (cron, interval, interval anchor) the schedule will run on."""
    if isinstance(cmd, CreateDcaSchedule):
        return cmd.symbol, cmd.quote_amount, cmd.cron, cmd.interval_s, now
    assert row is not None
    changing = cmd.action == "change"
    amount = (cmd.quote_amount if changing else None) or row.quote_amount
    cron, interval = (cmd.cron, cmd.interval_s) if changing and (cmd.cron or cmd.interval_s) \
        else (row.cron, row.interval_s)
    return row.symbol, amount, cron, interval, row.created_at if interval else now


def _judge(res: Resources, cmd: CreateDcaSchedule | UpdateDcaSchedule, row: ScheduleRecord | None,
           now: datetime) -> ScheduleFit:
    """Refuse a schedule every fire of which the risk check would refuse (jobs/domain/schedule_fit.py)."""
    symbol, amount, cron, interval, anchor = _terms(cmd, row, now)
    return judge_schedule(get_instrument(symbol), amount, cron=cron, interval_s=interval, anchor=anchor,
                          limits=res.limits, now=now)


async def _funds_warnings(db: Db, res: Resources, cmd: CreateDcaSchedule | UpdateDcaSchedule,
                          row: ScheduleRecord | None) -> list[str]:
    """A warning, not a refusal: the balance changes with every trade (and a deposit may come)."""
    symbol, amount, *_ = _terms(cmd, row, datetime.now(UTC))
    inst = get_instrument(symbol)
    venue = res.venue_for(inst.symbol)  # where its buys go, so whose balance pays for them
    balance = await Ledger(db).balance(venue, inst.quote)
    available = balance.total - balance.locked if balance is not None else Decimal(0)
    need = amount * (1 + res.fee_rate_of(venue))
    if need <= available:
        return []
    return [f"the available {inst.quote} balance ({available:.2f}) is below quote_amount {amount} plus the "
            f"fee (about {need:.2f}): fires are refused until the account holds enough {inst.quote}"]


def _updated(row: ScheduleRecord, cmd: UpdateDcaSchedule | DeleteDcaSchedule,
             now: datetime) -> ScheduleRecord:
    """The schedule as the command leaves it (deleted, paused, changed or resumed)."""
    if isinstance(cmd, DeleteDcaSchedule):
        return replace(row, status="deleted", next_fire_at=None, updated_at=now)
    if cmd.action == "pause":
        return replace(row, status="paused", next_fire_at=None, updated_at=now)
    if cmd.action == "change":
        cron, interval = ((cmd.cron, cmd.interval_s) if cmd.cron or cmd.interval_s
                          else (row.cron, row.interval_s))
        grace = row.misfire_grace_s if cmd.misfire_grace_s is None else cmd.misfire_grace_s
        row = replace(row, name=cmd.name or row.name, quote_amount=cmd.quote_amount or row.quote_amount,
                      cron=cron, interval_s=interval, misfire_grace_s=grace,
                      max_price=row.max_price if cmd.max_price is None else cmd.max_price)
    if cmd.action == "resume" or row.status == "active":
        # resuming never buys for fires that passed while paused: it continues from now
        row = replace(row, status="active", next_fire_at=next_fire_after(
            now, cron=row.cron, interval_s=row.interval_s, anchor=row.created_at if row.interval_s else now))
    return replace(row, updated_at=now)


async def run_scheduled_buy(res: Resources, run_id: str) -> CommandResult | None:
    """Execute one recorded fire: a market buy of quote_amount, at most once per run."""
    async with read(res.db) as db:
        run = await Schedules(db).run(run_id)
        sch = await Schedules(db).get(run.schedule_id) if run else None
    if run is None or sch is None:
        return None
    cmd = PlaceOrder(command_id=fire_command_id(sch.id, run.fire_time), source="scheduler", symbol=sch.symbol,
                     side="buy", type="market", notional=sch.quote_amount, schedule_id=sch.id)
    quote = await fresh_quote(res, sch.symbol, wait_s=QUOTE_WAIT_S)
    if sch.max_price is not None and quote is not None and quote.ask > sch.max_price:
        await _finish_run(res, run_id, "failed", None,
                          f"ask {quote.ask} above max_price {sch.max_price}; no buy for this fire",
                          outcome="skipped_max_price")
        return None
    result = await place_order(res, cmd)
    placed = result.status in ("succeeded", "unknown", "running")
    status: ScheduleRunStatus = "ordered" if placed else "failed"
    await _finish_run(res, run_id, status, result.order_id, result.message)
    return result


async def fresh_quote(res: Resources, symbol: str, *, wait_s: float) -> QuoteView | None:
    """The symbol's quote once it is fresh enough to trade on, waiting up to wait_s for that;
    after that, whatever the view holds (the buy is then refused, and says why).

    Why wait: a fire due while the daemon was down is caught up as it starts (docs/dca-schedules.md),
    which can be before its feed has delivered a first quote; the last one is then older than
    quote_stale_after_s, and a market buy on it would be refused for a gap of a second or two.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        quote = await res.reader.quote(symbol)
        if quote is not None and not quote.too_old(datetime.now(UTC), res.settings.quote_stale_after_s):
            return quote
        if loop.time() >= deadline:
            return quote
        await asyncio.sleep(QUOTE_POLL_S)


async def _finish_run(res: Resources, run_id: str, status: ScheduleRunStatus, order_id: str | None, note: str,
                      *, outcome: str | None = None) -> None:
    """Record how a run ended, on the run and on its schedule (`outcome`, default the run's status).

    The schedule is locked before the run, as the clock does when it fires. A run finished
    before (a re-delivered job) leaves the schedule's outcome alone, so a failure counts once.
    """
    async with effect(res) as (db, fx):
        schedules = Schedules(db)
        unlocked = await schedules.run(run_id)
        sch = await schedules.get(unlocked.schedule_id, lock=True) if unlocked else None
        locked = await schedules.run(run_id, lock=True)
        assert locked is not None
        first = locked.status == "enqueued"
        run: RunRecord = await schedules.finish_run(run_id, status, order_id, note)
        fx.note(actor="scheduler", action=f"dca_run.{status}", subject=run.schedule_id,
                payload={"run_id": run.id, "fire_time": run.fire_time.isoformat(), "order_id": order_id,
                         "note": note})
        if first and sch is not None and sch.status != "deleted":
            # updated_at: when the row changed (the ORM's onupdate did the same)
            sch = await schedules.save(replace(with_outcome(sch, outcome or status, note),
                                               updated_at=datetime.now(UTC)))
            fx.schedules.append(sch)
    level = logging.INFO if status == "ordered" else logging.WARNING
    log.log(level, "schedule %s fire %s: %s%s (%s)", run.schedule_id, run.fire_time.isoformat(),
            outcome or status, f", order {order_id}" if order_id else "", note)


FAILURE_OUTCOMES = frozenset({"failed"})  # a skip (max_price, missed while down) is not the schedule failing


def with_outcome(sch: ScheduleRecord, outcome: str, note: str | None) -> ScheduleRecord:
    """The schedule keeping a run's outcome (list_dca_schedules, health): a buy placed clears the
    error and the count of failures in a row; a failure adds one; a skip keeps the count."""
    if outcome == "ordered":
        return replace(sch, last_outcome=outcome, last_error=None, consecutive_failures=0)
    failures = sch.consecutive_failures + (1 if outcome in FAILURE_OUTCOMES else 0)
    return replace(sch, last_outcome=outcome, last_error=note, consecutive_failures=failures)


async def record_run(db: Db, sch: ScheduleRecord, fire_time: datetime, status: ScheduleRunStatus,
                     note: str) -> str | None:
    """Record the run for (schedule, fire time) once; its id, or None if that fire was recorded before.
    A run to buy for ("enqueued") carries the command id its buy will place the order under."""
    run = await Schedules(db).record_run(
        "run_" + uuid.uuid4().hex[:16], sch.id, fire_time, status,
        fire_command_id(sch.id, fire_time) if status == "enqueued" else None, note)
    return None if run is None else run.id


async def pending_runs(res: Resources) -> list[str]:
    """Runs recorded but whose buy has not finished: re-enqueued at start-up (and by redelivery)."""
    async with read(res.db) as db:
        return await Schedules(db).pending_run_ids()
