"""The paper account: balances, trading state and positions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fastmcp import FastMCP
from pydantic import BaseModel

from jobs.preview import account_venue
from mcp_bridge.context import READ_ONLY, Bridge
from storage.figures import AvgPrice, Balance, Fee, Figures, Money, Price, Qty, quote_currency


class BalanceLine(Figures):
    """At the asset's precision (2 decimals for USDT and USD), rounded toward zero."""

    asset: str
    total: Balance
    locked: Balance
    available: Balance


class AccountResult(BaseModel):
    mode: str
    venue: str
    trading_state: str
    trading_state_reason: str | None
    balances: list[BalanceLine]


class PositionLine(Figures):
    """avg_price: average entry price of the open qty, fees not included (as exchanges show it);
    realized_pnl: closed qty only, before fees; fees: all fees paid on the position's fills.
    Net = realized_pnl + unrealized_pnl - fees. Money in the quote currency, to the cent."""

    venue: str
    symbol: str
    quote_currency: str | None = None
    qty: Qty
    avg_price: AvgPrice
    realized_pnl: Money
    fees: Fee
    mark_price: Price | None  # bid for longs, ask for shorts; None without a quote
    unrealized_pnl: Money | None
    updated_at: datetime


class CurrencyTotal(Figures):
    """The positions' P&L and fees summed per quote currency (figures in different currencies are
    not added up)."""

    currency: str
    realized_pnl: Money
    unrealized_pnl: Money
    fees: Fee

    def figure_asset(self) -> str | None:
        return self.currency


class PositionsResult(BaseModel):
    positions: list[PositionLine]
    totals: list[CurrencyTotal]


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="Account balances", annotations=READ_ONLY)
    async def get_account() -> AccountResult:
        """Paper account balances (total, locked by open orders, available) and whether trading is
        ACTIVE or HALTED."""
        venue = account_venue()
        balances = [b for b in await bridge.reader.balances() if b.venue == venue]
        state = await bridge.reader.trading_state()
        return AccountResult(
            mode=bridge.settings.mode, venue=venue, trading_state=state.state,
            trading_state_reason=state.reason,
            balances=[BalanceLine(asset=b.asset, total=b.total, locked=b.locked, available=b.available)
                      for b in balances])

    @mcp.tool(title="Positions", annotations=READ_ONLY)
    async def get_positions() -> PositionsResult:
        """Positions (qty, average entry price, P&L, fees) marked at the live quote, with totals per
        quote currency."""
        lines = []
        totals: dict[str, CurrencyTotal] = {}
        for p in await bridge.reader.positions():
            q = await bridge.reader.quote(p.symbol)
            mark = None if q is None or p.qty == 0 else (q.bid if p.qty > 0 else q.ask)
            unrealized = None if mark is None else (mark - p.avg_price) * p.qty
            currency = quote_currency(p.symbol)
            lines.append(PositionLine(
                venue=p.venue, symbol=p.symbol, quote_currency=currency, qty=p.qty, avg_price=p.avg_price,
                realized_pnl=p.realized_pnl, fees=p.fees, mark_price=mark, unrealized_pnl=unrealized,
                updated_at=p.updated_at))
            if currency is not None:
                t = totals.get(currency) or CurrencyTotal(currency=currency, realized_pnl=Decimal(0),
                                                           unrealized_pnl=Decimal(0), fees=Decimal(0))
                totals[currency] = CurrencyTotal(
                    currency=currency, realized_pnl=t.realized_pnl + p.realized_pnl,
                    unrealized_pnl=t.unrealized_pnl + (unrealized or Decimal(0)), fees=t.fees + p.fees)
        return PositionsResult(positions=lines, totals=[totals[c] for c in sorted(totals)])
