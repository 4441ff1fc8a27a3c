"""The paper account: balances, trading state and positions."""

from __future__ import annotations

from datetime import datetime

from fastmcp import FastMCP
from pydantic import BaseModel

from mcp_bridge.context import READ_ONLY, Bridge
from storage.values import Amount


class BalanceLine(BaseModel):
    asset: str
    total: Amount
    locked: Amount
    available: Amount


class AccountResult(BaseModel):
    mode: str
    venue: str
    trading_state: str
    trading_state_reason: str | None
    balances: list[BalanceLine]


class PositionLine(BaseModel):
    venue: str
    symbol: str
    qty: Amount
    avg_price: Amount
    realized_pnl: Amount
    mark_price: Amount | None  # bid for longs, ask for shorts; None without a quote
    unrealized_pnl: Amount | None
    updated_at: datetime


class PositionsResult(BaseModel):
    positions: list[PositionLine]


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(annotations=READ_ONLY)
    async def get_account() -> AccountResult:
        """Balances of the paper account (total, locked by open orders, available) and whether trading
        is ACTIVE or HALTED. Use it to check funds before preview_order and to confirm a trade's effect.
        """
        balances = [b for b in await bridge.reader.balances() if b.venue == "paper"]
        state = await bridge.reader.trading_state()
        return AccountResult(
            mode=bridge.settings.mode, venue="paper", trading_state=state.state,
            trading_state_reason=state.reason,
            balances=[BalanceLine(asset=b.asset, total=b.total, locked=b.locked, available=b.available)
                      for b in balances])

    @mcp.tool(annotations=READ_ONLY)
    async def get_positions() -> PositionsResult:
        """Open and closed positions (qty, average price, realized P&L) with a mark from the live quote.

        Use it to see what is held, e.g. before a sell (sell qty may not exceed the position).
        """
        lines = []
        for p in await bridge.reader.positions():
            q = await bridge.reader.quote(p.symbol)
            mark = None if q is None or p.qty == 0 else (q.bid if p.qty > 0 else q.ask)
            lines.append(PositionLine(
                venue=p.venue, symbol=p.symbol, qty=p.qty, avg_price=p.avg_price, realized_pnl=p.realized_pnl,
                mark_price=mark, unrealized_pnl=None if mark is None else (mark - p.avg_price) * p.qty,
                updated_at=p.updated_at))
        return PositionsResult(positions=lines)
