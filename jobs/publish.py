"""After a transaction commits: update the Redis state view, the audit feed and the event stream.

Collected while the transaction runs (`Effects`), published only after commit, so the view never
shows an effect Postgres does not hold. If publishing fails, the next rebuild repairs the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row

from jobs.resources import Resources
from storage.audit import AuditEntry
from storage.models import BalanceRow, CommandRow, DcaScheduleRow, OrderRow, PositionRow
from storage.state.from_rows import balance_view, command_view, order_view, position_view, schedule_view


@dataclass
class Effects:
    """Rows as committed: ORM objects, or Core rows returned by INSERT/UPDATE ... RETURNING."""

    orders: dict[str, OrderRow | Row[Any]] = field(default_factory=dict)
    positions: list[PositionRow | Row[Any]] = field(default_factory=list)
    balances: list[BalanceRow | Row[Any]] = field(default_factory=list)
    schedules: list[DcaScheduleRow] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    command: CommandRow | Row[Any] | None = None

    def order(self, row: OrderRow | Row[Any]) -> None:
        self.orders[row.id] = row


async def publish(res: Resources, fx: Effects) -> None:
    """Everything one committed effect changed, in one Redis round trip (a MULTI/EXEC pipeline)."""
    w = res.writer
    async with w.batch() as p:
        if fx.orders:
            await w.write_orders((order_view(o) for o in fx.orders.values()), p)
        if fx.positions or fx.balances:
            await w.write_portfolio((position_view(r) for r in fx.positions),
                                    (balance_view(b) for b in fx.balances), p)
        for sch in fx.schedules:
            await w.write_schedule(schedule_view(sch), p)
        if fx.audit:
            await w.push_audit((e.as_dict() for e in fx.audit), p)
        for kind, data in fx.events:
            await w.publish_event(kind, data, p)
        if fx.command is not None:
            final = fx.command.status not in ("received", "running")
            await w.write_command(command_view(fx.command), notify=final, pipe=p)
