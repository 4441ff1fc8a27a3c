"""Rows -> state-view records. One place, used by the worker after commits and by rebuild.

The rows are the repositories' records (storage/repos) or ORM rows with the same columns; a
schedule is always its record (the rebuild reads schedules as records too).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from storage.models import (
    BalanceRow,
    CommandRow,
    OrderRow,
    PositionRow,
    TradingControlRow,
)
from storage.repos.records import CommandRecord
from storage.repos.schedules import ScheduleRecord
from storage.state.views import (
    BalanceView,
    CommandView,
    OrderView,
    PositionView,
    ScheduleView,
    TradingStateView,
)
from storage.values import plain_decimal


def order_view(r: OrderRow) -> OrderView:
    return OrderView(
        order_id=r.id, client_order_id=r.client_order_id, command_id=r.command_id, venue=r.venue,
        symbol=r.symbol, side=r.side, type=r.type, time_in_force=r.time_in_force,  # type: ignore[arg-type]
        qty=r.qty, notional=r.notional, limit_price=r.limit_price, stop_price=r.stop_price,
        status=r.status, filled_qty=r.filled_qty, avg_fill_price=r.avg_fill_price,  # type: ignore[arg-type]
        fees=r.fees, reject_reason=r.reject_reason, schedule_id=r.schedule_id,
        created_at=r.created_at, updated_at=r.updated_at, version=r.version,
        trail_amount=r.trail_amount, trail_percent=r.trail_percent, replaces=r.replaces,
        order_list_id=r.order_list_id, leg=r.leg,
    )


def position_view(r: PositionRow) -> PositionView:
    return PositionView(venue=r.venue, symbol=r.symbol, qty=r.qty, avg_price=r.avg_price,
                        realized_pnl=r.realized_pnl, fees=r.fees, updated_at=r.updated_at,
                        version=r.version)


def balance_view(r: BalanceRow) -> BalanceView:
    return BalanceView(venue=r.venue, asset=r.asset, total=r.total, locked=r.locked, version=r.version)


def schedule_view(r: ScheduleRecord) -> ScheduleView:
    return ScheduleView(
        schedule_id=r.id, name=r.name, venue=r.venue, symbol=r.symbol, quote_amount=r.quote_amount,
        cron=r.cron, interval_s=r.interval_s, status=r.status,
        misfire_grace_s=r.misfire_grace_s, max_price=r.max_price, next_fire_at=r.next_fire_at,
        last_fire_at=r.last_fire_at, created_at=r.created_at, last_outcome=r.last_outcome,
        last_error=r.last_error, consecutive_failures=r.consecutive_failures or 0,
    )


# a number written by str(Decimal) from a NUMERIC(38, 18) column: "0E-18", "0.001530000000000000"
_DECIMAL_TEXT = re.compile(r"-?\d+(\.\d+)?(E[+-]?\d+)?")


def _plain(value: Any) -> Any:
    """A decimal string in a command's result as plain_decimal writes it (same value, no exponent,
    no trailing zeros); anything else as it is."""
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value) and ("." in value or "E" in value):
        return plain_decimal(Decimal(value))
    return value


def command_view(r: CommandRow | CommandRecord) -> CommandView:
    result: dict[str, Any] = r.result or {}
    return CommandView(
        command_id=r.id, kind=r.kind, status=r.status,  # type: ignore[arg-type]
        message=str(result.get("message") or r.error or ""),
        order_id=result.get("order_id"), schedule_id=result.get("schedule_id"),
        result={k: _plain(v) for k, v in r.result.items()} if r.result else r.result, updated_at=r.updated_at,
    )


def trading_state_view(r: TradingControlRow | None) -> TradingStateView:
    """Without the control row (a damaged database) trading is halted, not assumed ACTIVE."""
    if r is None:
        return TradingStateView(state="HALTED", reason="no trading_control row in Postgres")
    return TradingStateView(state=r.state, reason=r.reason)
