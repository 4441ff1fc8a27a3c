"""Command status, the audit log and system health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_bridge.context import READ_ONLY, Bridge, CommandIdParam
from storage.state.views import CommandView

COMPONENTS = ["daemon", "worker"]


class AuditResult(BaseModel):
    entries: list[dict[str, Any]]
    count: int


class ComponentHealth(BaseModel):
    alive: bool
    last_seen: str | None
    info: dict[str, Any] | None


class FeedHealth(BaseModel):
    symbol: str
    has_quote: bool
    age_s: float | None
    stale: bool


class HealthResult(BaseModel):
    status: Literal["ok", "degraded"]
    mode: str
    trading_state: str
    trading_state_reason: str | None
    components: dict[str, ComponentHealth]
    feeds: list[FeedHealth]
    problems: list[str]


async def health_report(bridge: Bridge) -> HealthResult:
    now = datetime.now(UTC)
    beats = await bridge.reader.heartbeats(COMPONENTS)
    components = {name: ComponentHealth(alive=beat is not None, last_seen=(beat or {}).get("at"), info=beat)
                  for name, beat in beats.items()}
    problems = [f"no recent heartbeat from the {name}" for name, c in components.items() if not c.alive]
    feeds = []
    for symbol in bridge.settings.symbols:
        q = await bridge.reader.quote(symbol)
        if q is None:
            feeds.append(FeedHealth(symbol=symbol, has_quote=False, age_s=None, stale=True))
            problems.append(f"no quote for {symbol} yet")
            continue
        stale = bridge.quote_is_stale(q, now)
        feeds.append(FeedHealth(symbol=symbol, has_quote=True, age_s=round(q.age_s(now), 3),
                                stale=stale))
        if stale:
            problems.append(f"quote for {symbol} is stale")
    state = await bridge.reader.trading_state()
    if state.state != "ACTIVE":
        problems.append(f"trading is {state.state}" + (f": {state.reason}" if state.reason else ""))
    return HealthResult(status="degraded" if problems else "ok", mode=bridge.settings.mode,
                        trading_state=state.state, trading_state_reason=state.reason, components=components,
                        feeds=feeds, problems=problems)


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(annotations=READ_ONLY)
    async def get_command_status(command_id: CommandIdParam) -> CommandView:
        """Status of a command a tool queued (e.g. a place_order that came back 'pending').

        status: received/running = still working (ask again in a few seconds); succeeded; rejected or
        failed = did not happen, `message` says why and what to change; unknown = the venue outcome is
        being reconciled, do not repeat the order.
        """
        view = await bridge.reader.command(command_id)
        if view is None:
            raise ToolError(f"no command {command_id!r} (unknown id, or older than 7 days); tool results "
                            f"carry the command_id to ask about")
        return view

    @mcp.tool(annotations=READ_ONLY)
    async def get_audit_log(
        limit: Annotated[int, Field(ge=1, le=500, description="how many entries, newest first")] = 50,
    ) -> AuditResult:
        """The most recent audit entries (orders, fills, commands, schedule changes), newest first.
        Use it to explain to the user what the system did and why."""
        entries = await bridge.reader.audit_recent(limit)
        return AuditResult(entries=entries, count=len(entries))

    @mcp.tool(annotations=READ_ONLY)
    async def health() -> HealthResult:
        """Is the system able to trade? Heartbeats of the daemon and worker, trading state (ACTIVE or
        HALTED) and how fresh each symbol's quote is. Check it when orders are rejected unexpectedly."""
        return await health_report(bridge)
