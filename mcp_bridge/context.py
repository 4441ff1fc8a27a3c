"""What every tool module shares: settings, the command queue, the state reader, and how a
command's outcome is turned into a tool result (or a ToolError).

Tools get a `Bridge` by closure (`register(mcp, bridge)`); the server's lifespan fills in the
queue when it owns the Redis pool.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from jobs.commands import AnyCommand
from jobs.intake import NotAccepted
from jobs.queue import CommandQueue
from mcp_bridge.param_schema import SERVER_LIMITS, CompactSchema
from storage.settings import Settings
from storage.state.reader import StateReader
from storage.state.views import CommandView, OrderView, QuoteView
from storage.values import FINAL_COMMAND_STATUSES, CommandStatus

# annotation presets: every tool states all four hints (the spec's defaults are destructive, open-world)
READ_ONLY = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}


def writes(*, destructive: bool, idempotent: bool) -> dict[str, bool]:
    return {"readOnlyHint": False, "destructiveHint": destructive, "idempotentHint": idempotent,
            "openWorldHint": False}


# shared parameter types (CompactSchema: how tools/list shows them; validation is the type's)
# An amount or a price: a JSON number or a decimal string ("0.1" stays exact), > 0 and finite.
_NOT_SHOWN_FOR_AMOUNTS = ("exclusiveMinimum",)  # a positive amount goes without saying
PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False),
                            CompactSchema(omit=_NOT_SHOWN_FOR_AMOUNTS)]
OptionalPositiveDecimal = Annotated[PositiveDecimal | None, CompactSchema()]
# a symbol's length and characters are the server's limits; the example says what to pass
Symbol = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9/_\-.]+$",
                              description="e.g. 'BTC/USDT' or 'SPY'"),
                   CompactSchema(omit=SERVER_LIMITS)]
CommandIdParam = Annotated[str, Field(min_length=1, max_length=160, pattern=r"^[A-Za-z0-9:_\-.]+$")]


class CommandOutcome(BaseModel):
    """What happened to a queued command. status 'pending' means recorded durably (it runs exactly
    once, whatever restarts) and the worker has not finished yet."""

    command_id: str
    kind: str
    status: Literal["succeeded", "pending"]
    command_status: CommandStatus | None = Field(
        None, description="the worker's status for the command (None: not picked up yet)")
    message: str = ""
    order_id: str | None = None
    schedule_id: str | None = None
    details: dict[str, Any] | None = None
    next_step: str | None = None


class Bridge:
    def __init__(self, settings: Settings, queue: CommandQueue | None = None) -> None:
        self.settings = settings
        self._queue = queue
        self._reader: StateReader | None = None

    @property
    def queue(self) -> CommandQueue:
        if self._queue is None:
            raise ToolError("the bridge is not connected to Redis yet; retry in a few seconds")
        return self._queue

    @queue.setter
    def queue(self, queue: CommandQueue | None) -> None:
        self._queue = queue
        self._reader = None

    @property
    def connected(self) -> bool:
        return self._queue is not None

    @property
    def redis(self) -> Redis:
        return self.queue.pool

    @property
    def reader(self) -> StateReader:
        if self._reader is None:
            self._reader = StateReader(self.queue.pool)
        return self._reader

    def quote_is_stale(self, quote: QuoteView, now: datetime) -> bool:
        return quote.too_old(now, self.settings.quote_stale_after_s)

    async def run(self, cmd: AnyCommand) -> CommandOutcome:
        """Queue the command and wait (bounded by command_wait_s) for the worker's verdict."""
        return (await self.run_order_command(cmd))[0]

    async def run_order_command(self, cmd: AnyCommand, order_id: str | None = None
                                ) -> tuple[CommandOutcome, OrderView | None]:
        """`run`, and the order the command placed or changed (`order_id` if known), as committed."""
        try:
            done = await self.queue.submit(cmd, self.settings.command_wait_s)
        except NotAccepted as e:
            raise ToolError(str(e)) from None
        result = outcome(cmd.command_id, cmd.kind, done.command if done else None,
                         waited_s=self.settings.command_wait_s)
        order = done.order if done else None
        order_id = result.order_id or order_id
        if order is None and order_id:  # a repeat of a finished command, still pending, or unchanged
            order = await self.reader.order(order_id)
        return result, order


def outcome(command_id: str, kind: str, view: CommandView | None, *, waited_s: float) -> CommandOutcome:
    """succeeded → result; rejected/failed → ToolError with the worker's message; else pending."""
    if view is None or view.status not in FINAL_COMMAND_STATUSES:
        return CommandOutcome(
            command_id=command_id, kind=kind, status="pending",
            command_status=view.status if view else None, message=view.message if view else "queued",
            order_id=view.order_id if view else None, schedule_id=view.schedule_id if view else None,
            next_step=(f"accepted and recorded durably; the worker did not finish within {waited_s:g} s. It "
                       f"will run exactly once, even across restarts: do NOT repeat the request; call "
                       f"get_command_status(command_id={command_id!r}) in a few seconds"))
    if view.status in ("rejected", "failed"):
        raise ToolError(f"{kind} {view.status}: {view.message} (command {command_id})")
    return CommandOutcome(command_id=command_id, kind=kind, status="succeeded", command_status=view.status,
                          message=view.message, order_id=view.order_id, schedule_id=view.schedule_id,
                          details=view.result)
