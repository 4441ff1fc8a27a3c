"""Recurring (DCA) buys: create, list, pause/resume/change, delete."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.commands import CreateDcaSchedule, DeleteDcaSchedule, PlainText, UpdateDcaSchedule, new_command_id
from jobs.preview import InputRejected, check_schedule_input, default_dca_name
from mcp_bridge.context import (
    READ_ONLY,
    Bridge,
    CommandOutcome,
    OptionalPositiveDecimal,
    PositiveDecimal,
    Symbol,
    writes,
)
from mcp_bridge.param_schema import CompactSchema
from storage.state.views import ScheduleView

ScheduleId = Annotated[str, Field(min_length=4, max_length=64, pattern=r"^sch_[A-Za-z0-9]+$",
                                  description="from list_dca_schedules")]
Cron = Annotated[PlainText | None, Field(
    min_length=9, max_length=120,
    description="5-field crontab in UTC, e.g. '0 9 * * mon' = Mondays 09:00; cron or interval_s"),
    CompactSchema()]
IntervalS = Annotated[int | None, Field(ge=60, le=366 * 86400,
                                        description="seconds between fires, instead of cron"),
                      CompactSchema()]
MisfireGrace = Annotated[int | None, Field(
    ge=0, le=7 * 86400, description="how late (s) a missed fire may still buy; default 3600"),
    CompactSchema()]
MaxPrice = Annotated[OptionalPositiveDecimal, Field(description="skip a fire when the ask is above it")]
Name = Annotated[PlainText | None, Field(min_length=1, max_length=100, description="a label"),
                 CompactSchema()]


class ScheduleResult(BaseModel):
    command: CommandOutcome
    schedule: ScheduleView | None
    warnings: list[str] = Field(
        default_factory=list, description="what may stop some fires from buying (funds today, fires "
                                          "outside market hours); the schedule was saved anyway")


class SchedulesResult(BaseModel):
    schedules: list[ScheduleView]
    count: int


def _check(symbol: str | None, quote_amount: Decimal | None, cron: str | None, interval_s: int | None, *,
           timing_required: bool, max_price: Decimal | None) -> str | None:
    try:
        return check_schedule_input(symbol, quote_amount, cron, interval_s, timing_required=timing_required,
                                    max_price=max_price)
    except InputRejected as e:
        raise ToolError(str(e)) from None


async def _with_view(bridge: Bridge, result: CommandOutcome) -> ScheduleResult:
    """The command's outcome, the schedule as now stored, and the worker's warnings, if any (a
    schedule that could never buy is refused by the worker: jobs/domain/schedule_fit.py)."""
    view = await bridge.reader.schedule(result.schedule_id) if result.schedule_id else None
    warnings = (result.details or {}).get("warnings") or []
    return ScheduleResult(command=result, schedule=view, warnings=[str(w) for w in warnings])


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="Create a DCA schedule", annotations=writes(destructive=False, idempotent=False))
    async def create_dca_schedule(
        symbol: Symbol,
        quote_amount: Annotated[PositiveDecimal, Field(description="quote currency per fire, e.g. 100")],
        cron: Cron = None, interval_s: IntervalS = None, name: Name = None,
        misfire_grace_s: MisfireGrace = None, max_price: MaxPrice = None,
    ) -> ScheduleResult:
        """Create a recurring market buy of a fixed quote amount (DCA): "100 USDT of BTC every Monday
        09:00 UTC" = symbol 'BTC/USDT', quote_amount 100, cron '0 9 * * mon' (convert the user's time
        to UTC). After downtime only the latest missed fire within misfire_grace_s is bought, once. A
        schedule that could never pass the risk checks is refused; what may stop some fires comes
        back in `warnings`.
        """
        canonical = _check(symbol, quote_amount, cron, interval_s, timing_required=True, max_price=max_price)
        assert canonical is not None
        cmd = CreateDcaSchedule(
            command_id=new_command_id("schedule"), name=name or default_dca_name(quote_amount, canonical),
            symbol=canonical, quote_amount=quote_amount, cron=cron, interval_s=interval_s,
            misfire_grace_s=misfire_grace_s, max_price=max_price)
        return await _with_view(bridge, await bridge.run(cmd))

    @mcp.tool(title="List DCA schedules", annotations=READ_ONLY)
    async def list_dca_schedules() -> SchedulesResult:
        """DCA schedules not deleted (active or paused): next and last fire times (UTC), and the last
        run's last_outcome ('ordered', 'failed', 'skipped_max_price', 'skipped_missed'), last_error and
        consecutive_failures."""
        schedules = await bridge.reader.schedules()
        return SchedulesResult(schedules=schedules, count=len(schedules))

    @mcp.tool(title="Pause, resume or change a DCA schedule",
              annotations=writes(destructive=False, idempotent=False))
    async def update_dca_schedule(
        schedule_id: ScheduleId,
        action: Annotated[Literal["pause", "resume", "change"], Field(
            description="resume: from now, no catch-up; change: edit the fields given")],
        name: Name = None,
        quote_amount: Annotated[OptionalPositiveDecimal, Field(description="per fire")] = None,
        cron: Cron = None, interval_s: IntervalS = None, misfire_grace_s: MisfireGrace = None,
        max_price: MaxPrice = None,
    ) -> ScheduleResult:
        """Pause, resume or change a DCA schedule; for action='change' give only the fields to change
        (cron or interval_s replaces the timing). Pausing is the safe way to stop a schedule."""
        fields = {"name": name, "quote_amount": quote_amount, "cron": cron, "interval_s": interval_s,
                  "misfire_grace_s": misfire_grace_s, "max_price": max_price}
        given = [k for k, v in fields.items() if v is not None]
        if action != "change" and given:
            raise ToolError(f"{', '.join(given)} only apply to action='change'; action={action!r} takes none")
        if action == "change":
            if not given:
                raise ToolError("action='change' needs at least one of: " + ", ".join(fields))
            symbol = None
            if quote_amount is not None:
                current = await bridge.reader.schedule(schedule_id)
                symbol = current.symbol if current else None
            _check(symbol, quote_amount, cron, interval_s, timing_required=False, max_price=max_price)
        cmd = UpdateDcaSchedule(command_id=new_command_id("schedule"), schedule_id=schedule_id, action=action,
                                name=name, quote_amount=quote_amount, cron=cron, interval_s=interval_s,
                                misfire_grace_s=misfire_grace_s, max_price=max_price)
        return await _with_view(bridge, await bridge.run(cmd))

    @mcp.tool(title="Delete a DCA schedule", annotations=writes(destructive=True, idempotent=True))
    async def delete_dca_schedule(schedule_id: ScheduleId) -> ScheduleResult:
        """Delete a DCA schedule for good; refused unless the operator enabled destructive tools, so
        usually pause it with update_dca_schedule(action='pause') instead."""
        if not bridge.settings.destructive_tools:
            raise ToolError("deleting schedules is disabled (TRADINGD_DESTRUCTIVE_TOOLS=false); pause it "
                            "with update_dca_schedule(action='pause') or ask the operator to enable "
                            "destructive tools")
        cmd = DeleteDcaSchedule(command_id=new_command_id("schedule"), schedule_id=schedule_id)
        return await _with_view(bridge, await bridge.run(cmd))
