"""History: orders and fills, filtered and paged, from the state view.

Why its own module: the order tools act on one order; these list many, and share the paging
(an opaque cursor naming where the last page ended: a page stays right while new orders arrive,
which an offset would not) and the time-range arguments.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.preview import InputRejected, resolve_symbol
from mcp_bridge.context import READ_ONLY, Bridge, Symbol
from mcp_bridge.param_schema import SERVER_LIMITS, CompactSchema
from storage.state.fills import FillView
from storage.state.reader import Page, Position
from storage.state.views import OrderView

Limit = Annotated[int, Field(ge=1, le=200)]
Cursor = Annotated[str | None, Field(
    min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_\-=]+$", description="the previous page's 'next'"),
    CompactSchema(omit=SERVER_LIMITS)]
Since = Annotated[datetime | None, Field(description="inclusive; no offset = UTC"), CompactSchema()]
Until = Annotated[datetime | None, Field(description="exclusive; no offset = UTC"), CompactSchema()]
OptSymbol = Annotated[Symbol | None, CompactSchema()]
ScheduleId = Annotated[str | None, Field(
    min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$",
    description="only orders this DCA schedule placed"), CompactSchema(omit=SERVER_LIMITS)]
OrderIdFilter = Annotated[str | None, Field(
    min_length=4, max_length=40, pattern=r"^ord_[A-Za-z0-9_\-]+$",
    description="only this order's fills"), CompactSchema()]


class OrdersPage(BaseModel):
    orders: list[OrderView]
    count: int
    next: str | None = Field(None, description="pass as cursor for the next (older) page; None: no more")
    note: str | None = None


class FillsPage(BaseModel):
    fills: list[FillView]
    count: int
    next: str | None = Field(None, description="pass as cursor for the next (older) page; None: no more")
    note: str | None = None


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(f"{position[0]!r} {position[1]}".encode()).decode()


def decode_cursor(tool: str, cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        score, member = base64.urlsafe_b64decode(cursor.encode()).decode().split(" ", 1)
        return float(score), member
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ToolError(f"cursor {cursor[:40]!r} is not one {tool} returned; pass the 'next' value of its "
                        f"previous answer, or omit cursor for the newest page") from None


def time_range(since: datetime | None, until: datetime | None) -> tuple[float | None, float | None]:
    """Epoch seconds of the range; an instant without an offset is taken as UTC."""
    low, high = (None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
                 for t in (since, until))
    if low is not None and high is not None and low >= high:
        raise ToolError(f"since ({since}) must be before until ({until}); swap them or widen the range")
    return low, high


def canonical(symbol: str | None) -> str | None:
    if symbol is None:
        return None
    try:
        return resolve_symbol(symbol)
    except InputRejected as e:
        raise ToolError(str(e)) from None


def _note(page: Page[Any], what: str, limit: int) -> str | None:
    notes = []
    if page.next is not None and len(page.items) < limit:
        notes.append(f"this page stopped early after looking through many {what}; more may match: "
                     f"call again with cursor=next")
    if page.floor is not None:
        since = datetime.fromtimestamp(page.floor, UTC).isoformat(timespec="seconds")
        notes.append(f"the state view holds {what} from {since} on (the newest after its last rebuild); "
                     f"older ones are kept in the database but not listed here")
    return "; ".join(notes) or None


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="List orders", annotations={**READ_ONLY, "title": "List orders"})
    async def list_orders(
        status: Annotated[Literal["open", "filled", "cancelled", "rejected", "all"], Field(
            description="open: still working (cancellable)")] = "all",
        symbol: OptSymbol = None, schedule_id: ScheduleId = None, since: Since = None, until: Until = None,
        limit: Limit = 50, cursor: Cursor = None,
    ) -> OrdersPage:
        """Orders newest first, filtered by status, symbol, DCA schedule and creation time; while the
        answer has `next`, call again with cursor=next and the same filters."""
        after = decode_cursor("list_orders", cursor)
        low, high = time_range(since, until)
        page = await bridge.reader.order_page(symbol=canonical(symbol), status=status,
                                              schedule_id=schedule_id, since=low, until=high, after=after,
                                              limit=limit)
        return OrdersPage(orders=page.items, count=len(page.items),
                          next=encode_cursor(page.next) if page.next else None,
                          note=_note(page, "orders", limit))

    @mcp.tool(title="List fills", annotations={**READ_ONLY, "title": "List fills"})
    async def list_fills(symbol: OptSymbol = None, order_id: OrderIdFilter = None, since: Since = None,
                         until: Until = None, limit: Limit = 50, cursor: Cursor = None) -> FillsPage:
        """Executions newest first (price, qty, fee, maker or taker), filtered by symbol, order and
        time; while the answer has `next`, call again with cursor=next and the same filters."""
        after = decode_cursor("list_fills", cursor)
        low, high = time_range(since, until)
        page = await bridge.reader.fill_page(symbol=canonical(symbol), order_id=order_id, since=low,
                                             until=high, after=after, limit=limit)
        return FillsPage(fills=page.items, count=len(page.items),
                         next=encode_cursor(page.next) if page.next else None,
                         note=_note(page, "fills", limit))
