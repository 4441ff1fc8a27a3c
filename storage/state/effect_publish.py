"""Publishing one committed effect: its view writes and its events in one Redis round trip.

Why one MULTI/EXEC: the caller of a command reads the view right after its result (place_order
then get_order), so the view must hold the effect when the result is handed back, and a
subscriber must never see an event the view does not show yet. Staging the view writes, the audit
feed, the events and the command's outcome in one pipeline makes both land together (or neither)
and costs one round trip. The events for the orders and fills are made here from the same view
records (storage/events/from_views.py), so no flow has to remember to publish them and the
periodic settle republishes them with the same ids (storage/state/rebuild.settle).

The rows are the repositories' records (storage/repos/records.py), or any row with their columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from storage.audit import AuditEntry
from storage.events import Event, EventPublisher
from storage.events.from_views import fill_booked, order_updated
from storage.repos.schedules import ScheduleRecord
from storage.state.fills import fill_view
from storage.state.from_rows import balance_view, command_view, order_view, position_view, schedule_view
from storage.state.writer import StateWriter


async def publish_effect(writer: StateWriter, bus: EventPublisher, *, orders: Mapping[str, Any],
                         fills: Iterable[Any] = (), positions: Iterable[Any] = (),
                         balances: Iterable[Any] = (),
                         schedules: Iterable[ScheduleRecord] = (), audit: Iterable[AuditEntry] = (),
                         events: Iterable[Event] = (), command: Any = None) -> None:
    """What one committed effect changed, and its events, in one MULTI/EXEC (see the module docstring)."""
    order_views = {oid: order_view(o) for oid, o in orders.items()}
    fill_views = [fill_view(f) for f in fills]
    positions, balances, audit = list(positions), list(balances), list(audit)
    cids = {o.order_id: o.client_order_id for o in order_views.values()}
    all_events: list[Event] = [*(fill_booked(f, cids.get(f.order_id, "")) for f in fill_views),
                               *(order_updated(o) for o in order_views.values()),
                               *events]
    async with writer.batch() as p:
        if order_views:
            await writer.write_orders(order_views.values(), p)
        if fill_views:
            await writer.write_fills(fill_views, p)
        if positions or balances:
            await writer.write_portfolio((position_view(r) for r in positions),
                                         (balance_view(b) for b in balances), p)
        for sch in schedules:
            await writer.write_schedule(schedule_view(sch), p)
        if audit:
            await writer.push_audit((e.as_dict() for e in audit), p)
        bus.stage(p, all_events)
        if command is not None:
            final = command.status not in ("received", "running")
            cmd = command_view(command)
            await writer.write_command(cmd, notify=final, order=order_views.get(cmd.order_id or ""), pipe=p)
