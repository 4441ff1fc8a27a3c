"""DCA schedule commands (create, pause, resume, change, delete) and the scheduled buy itself.

The daemon records each fire as a dca_runs row (unique per schedule and fire time) before it
enqueues `run_scheduled_buy`; the buy's command id is derived from that pair, so a fire that
is enqueued twice or re-run after a crash places one order.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from jobs.commands import CommandResult, CreateDcaSchedule, DeleteDcaSchedule, PlaceOrder, UpdateDcaSchedule
from jobs.domain.instruments import UnknownInstrumentError, get_instrument
from jobs.domain.orders import MAX_DECIMALS, MAX_NOTIONAL, MAX_PRICE, OrderSpecError, check_amount
from jobs.domain.schedule_clock import Clock, ScheduleSpecError, next_fire_after, utc_now, validate_spec
from jobs.domain.schedule_fit import ScheduleFit, judge_schedule
from jobs.effects import effect_session
from jobs.ledger import claim_command, finish_command
from jobs.orders import _result, place_order
from jobs.resources import Resources
from storage.driver import SessionDb
from storage.models import BalanceRow, DcaRunRow, DcaScheduleRow
from storage.state import keys
from storage.state.views import QuoteView
from storage.values import FINAL_COMMAND_STATUSES

ScheduleCommand = CreateDcaSchedule | UpdateDcaSchedule | DeleteDcaSchedule
QUOTE_WAIT_S = 10.0  # how long a fire waits for a fresh quote (see fresh_quote)
QUOTE_POLL_S = 0.1
log = logging.getLogger("tradingd.dca")


def fire_command_id(schedule_id: str, fire_time: datetime) -> str:
    return f"dca:{schedule_id}:{fire_time.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"


def _spec_error(cmd: CreateDcaSchedule | UpdateDcaSchedule, row: DcaScheduleRow | None,
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
    async with effect_session(res) as (s, fx):
        db = SessionDb(s)
        cmd_row = await claim_command(db, cmd)
        if cmd_row.status in FINAL_COMMAND_STATUSES:
            fx.command = cmd_row  # publish it again: a run that died before publishing left the view behind
            return _result(cmd_row)
        row: DcaScheduleRow | None = None
        if not isinstance(cmd, CreateDcaSchedule):
            row = await s.get(DcaScheduleRow, cmd.schedule_id, with_for_update=True)
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
                warnings = fit.warnings + await _funds_warnings(s, res, cmd, row)  # type: ignore[arg-type]
            if error:
                await finish_command(db, fx, cmd.command_id, "rejected", error)
            elif isinstance(cmd, CreateDcaSchedule):
                inst = get_instrument(cmd.symbol)
                row = DcaScheduleRow(
                    id="sch_" + uuid.uuid4().hex[:16], name=cmd.name, venue=res.default_venue,
                    symbol=inst.symbol,
                    quote_amount=cmd.quote_amount, cron=cmd.cron, interval_s=cmd.interval_s, status="active",
                    misfire_grace_s=cmd.misfire_grace_s if cmd.misfire_grace_s is not None
                    else res.settings.dca_misfire_grace_s,
                    max_price=cmd.max_price, command_id=cmd.command_id, created_at=now, updated_at=now)
                row.next_fire_at = next_fire_after(now, cron=row.cron, interval_s=row.interval_s, anchor=now)
                s.add(row)
                await finish_command(db, fx, cmd.command_id, "succeeded", f"schedule {row.id} created",
                                     schedule_id=row.id, next_fire_at=row.next_fire_at.isoformat(),
                                     warnings=warnings or None)
            else:
                assert row is not None
                _apply_update(row, cmd, now)
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


def _terms(cmd: CreateDcaSchedule | UpdateDcaSchedule, row: DcaScheduleRow | None,
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


def _judge(res: Resources, cmd: CreateDcaSchedule | UpdateDcaSchedule, row: DcaScheduleRow | None,
           now: datetime) -> ScheduleFit:
    """Refuse a schedule every fire of which the risk check would refuse (jobs/domain/schedule_fit.py)."""
    symbol, amount, cron, interval, anchor = _terms(cmd, row, now)
    return judge_schedule(get_instrument(symbol), amount, cron=cron, interval_s=interval, anchor=anchor,
                          limits=res.limits, now=now)


async def _funds_warnings(s: AsyncSession, res: Resources, cmd: CreateDcaSchedule | UpdateDcaSchedule,
                          row: DcaScheduleRow | None) -> list[str]:
    """A warning, not a refusal: the balance changes with every trade (and a deposit may come)."""
    symbol, amount, *_ = _terms(cmd, row, datetime.now(UTC))
    inst = get_instrument(symbol)
    balance = await s.get(BalanceRow, (res.default_venue, inst.quote))
    available = balance.total - balance.locked if balance is not None else Decimal(0)
    need = amount * (1 + res.fee_rate)
    if need <= available:
        return []
    return [f"the available {inst.quote} balance ({available:.2f}) is below quote_amount {amount} plus the "
            f"fee (about {need:.2f}): fires are refused until the account holds enough {inst.quote}"]


def _apply_update(row: DcaScheduleRow, cmd: UpdateDcaSchedule | DeleteDcaSchedule, now: datetime) -> None:
    if isinstance(cmd, DeleteDcaSchedule):
        row.status, row.next_fire_at = "deleted", None
    elif cmd.action == "pause":
        row.status, row.next_fire_at = "paused", None
    else:
        if cmd.action == "change":
            row.name = cmd.name or row.name
            row.quote_amount = cmd.quote_amount or row.quote_amount
            if cmd.cron or cmd.interval_s:
                row.cron, row.interval_s = cmd.cron, cmd.interval_s
            if cmd.misfire_grace_s is not None:
                row.misfire_grace_s = cmd.misfire_grace_s
            if cmd.max_price is not None:
                row.max_price = cmd.max_price
        if cmd.action == "resume" or row.status == "active":
            row.status = "active"
            # resuming never buys for fires that passed while paused: it continues from now
            row.next_fire_at = next_fire_after(now, cron=row.cron, interval_s=row.interval_s,
                                               anchor=row.created_at if row.interval_s else now)
    row.updated_at = now


async def run_scheduled_buy(res: Resources, run_id: str) -> CommandResult | None:
    """Execute one recorded fire: a market buy of quote_amount, at most once per run."""
    async with res.sessions() as s:
        run = await s.get(DcaRunRow, run_id)
        sch = await s.get(DcaScheduleRow, run.schedule_id) if run else None
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
    status = "ordered" if result.status in ("succeeded", "unknown", "running") else "failed"
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


async def _finish_run(res: Resources, run_id: str, status: str, order_id: str | None, note: str, *,
                      outcome: str | None = None) -> None:
    """Record how a run ended, on the run and on its schedule (`outcome`, default the run's status).

    The schedule is locked before the run, as the clock does when it fires. A run finished
    before (a re-delivered job) leaves the schedule's outcome alone, so a failure counts once.
    """
    async with effect_session(res) as (s, fx):
        schedule_id = await s.scalar(select(DcaRunRow.schedule_id).where(DcaRunRow.id == run_id))
        sch = await s.get(DcaScheduleRow, schedule_id, with_for_update=True) if schedule_id else None
        run = await s.get(DcaRunRow, run_id, with_for_update=True)
        assert run is not None
        first = run.status == "enqueued"
        run.status, run.order_id, run.note = status, order_id, note
        fx.note(actor="scheduler", action=f"dca_run.{status}", subject=run.schedule_id,
                payload={"run_id": run.id, "fire_time": run.fire_time.isoformat(), "order_id": order_id,
                         "note": note})
        if first and sch is not None and sch.status != "deleted":
            record_outcome(sch, outcome or status, note)
            fx.schedules.append(sch)
    level = logging.INFO if status == "ordered" else logging.WARNING
    log.log(level, "schedule %s fire %s: %s%s (%s)", run.schedule_id, run.fire_time.isoformat(),
            outcome or status, f", order {order_id}" if order_id else "", note)


FAILURE_OUTCOMES = frozenset({"failed"})  # a skip (max_price, missed while down) is not the schedule failing


def record_outcome(sch: DcaScheduleRow, outcome: str, note: str | None) -> None:
    """Keep a run's outcome on its schedule (list_dca_schedules, health): a buy placed clears the
    error and the count of failures in a row; a failure adds one; a skip keeps the count."""
    sch.last_outcome = outcome
    if outcome == "ordered":
        sch.last_error, sch.consecutive_failures = None, 0
        return
    sch.last_error = note
    if outcome in FAILURE_OUTCOMES:
        sch.consecutive_failures = (sch.consecutive_failures or 0) + 1


async def pending_runs(res: Resources) -> list[str]:
    async with res.sessions() as s:
        return list((await s.execute(select(DcaRunRow.id).where(DcaRunRow.status == "enqueued"))).scalars())
