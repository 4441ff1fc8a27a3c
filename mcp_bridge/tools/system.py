"""Command status, the audit log and system health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.preview import followed_symbols
from mcp_bridge.context import READ_ONLY, Bridge, CommandIdParam
from storage.state.health import FeedStatus, HealthInputs, evaluate, inputs_or_outage
from storage.state.views import CommandView


class AuditResult(BaseModel):
    entries: list[dict[str, Any]]
    count: int


class ComponentHealth(BaseModel):
    alive: bool
    last_seen: str | None
    info: dict[str, Any] | None


class HealthResult(BaseModel):
    status: Literal["ok", "degraded", "down"] = Field(
        description="ok; degraded (works, with the problems listed); down (a store is unreachable: "
                    "nothing can be accepted)")
    mode: str
    trading_state: str | None
    trading_state_reason: str | None
    components: dict[str, ComponentHealth]
    checks: dict[str, str]
    feeds: list[FeedStatus]
    commands_waiting: int
    oldest_waiting_s: float | None
    problems: list[str]


async def health_report(bridge: Bridge) -> HealthResult:
    """The shared judgement (storage/state/health.py) of what Redis holds, the same the daemon's
    /health makes; answers "down" rather than raising when Redis is unreachable."""
    if not bridge.connected:
        inputs = HealthInputs(now=datetime.now(UTC), redis_error="the bridge is not connected to Redis yet")
    else:
        inputs = await inputs_or_outage(bridge.redis, symbols=followed_symbols(bridge.settings),
                                        queue_name=bridge.settings.queue_name)
    report = evaluate(inputs, stale_after_s=bridge.settings.quote_stale_after_s)
    beats = {"daemon": inputs.daemon, "worker": inputs.worker}
    components = {name: ComponentHealth(alive=report.checks.get(name) not in (None, "down"),
                                        last_seen=(beat or {}).get("at"), info=beat)
                  for name, beat in beats.items()}
    return HealthResult(status=report.status, mode=bridge.settings.mode, trading_state=report.trading_state,
                        trading_state_reason=report.trading_state_reason, components=components,
                        checks=report.checks, feeds=report.feeds, commands_waiting=report.commands_waiting,
                        oldest_waiting_s=report.oldest_waiting_s, problems=report.problems)


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="Command status", annotations=READ_ONLY)
    async def get_command_status(command_id: CommandIdParam) -> CommandView:
        """Status of a queued command (e.g. a 'pending' place_order): received or running = ask again
        shortly; rejected or failed = did not happen, `message` says why; unknown = being reconciled,
        do not repeat the order."""
        view = await bridge.reader.command(command_id)
        if view is None:
            raise ToolError(f"no command {command_id!r} (unknown id, or older than 7 days); tool results "
                            f"carry the command_id to ask about")
        return view

    @mcp.tool(title="Audit log", annotations=READ_ONLY)
    async def get_audit_log(
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> AuditResult:
        """The latest audit entries (orders, fills, commands, schedule changes), newest first: what
        the system did and why."""
        entries = await bridge.reader.audit_recent(limit)
        return AuditResult(entries=entries, count=len(entries))

    @mcp.tool(title="System health", annotations=READ_ONLY)
    async def health() -> HealthResult:
        """Can the system trade? ok, degraded or down, with the problems in plain words; check it
        when orders are rejected or commands stay pending."""
        return await health_report(bridge)
