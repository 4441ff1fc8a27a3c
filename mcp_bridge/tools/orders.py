"""Orders: look up, preview (valuation + risk + a 30 s token), place with the token, cancel, replace."""

from __future__ import annotations

from typing import Annotated, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.commands import CancelOrder, OrderFields, PlaceOrder, ReplaceOrder, new_command_id
from jobs.preview import (
    InputRejected,
    PreviewRefused,
    PreviewResult,
    consume_preview,
    make_preview,
)
from jobs.replace_preview import preview_replacement, replacement
from mcp_bridge.context import READ_ONLY, Bridge, CommandOutcome, PositiveDecimal, Symbol, writes
from storage.state.views import OrderView

OrderId = Annotated[str, Field(min_length=4, max_length=64, pattern=r"^(ord_|td-)[A-Za-z0-9_\-]+$",
                               description="an order id ('ord_...') or a client order id ('td-...')")]
SideParam = Annotated[Literal["buy", "sell"], Field(description="buy or sell (no short selling)")]
TypeParam = Annotated[Literal["market", "limit", "stop", "stop_limit", "trailing_stop"], Field(
    description="market: fills now; limit: needs limit_price, rests until the market reaches it; stop: "
                "needs stop_price, a market order once touched; stop_limit: needs stop_price and "
                "limit_price, a limit once touched; trailing_stop: needs trail_amount or trail_percent, "
                "a stop that follows the best price")]
Qty = Annotated[PositiveDecimal | None, Field(
    description="quantity in base units (e.g. 0.01 BTC); give exactly one of qty or notional")]
Notional = Annotated[PositiveDecimal | None, Field(
    description="order value in the quote currency (e.g. 100 USDT); market buys only")]
LimitPrice = Annotated[PositiveDecimal | None, Field(description="limit price (limit and stop_limit)")]
StopPrice = Annotated[PositiveDecimal | None, Field(description="trigger price (stop and stop_limit)")]
TrailAmount = Annotated[PositiveDecimal | None, Field(
    description="trailing_stop: distance of the stop from the best price, in the quote currency")]
TrailPercent = Annotated[PositiveDecimal | None, Field(
    description="trailing_stop: distance of the stop from the best price, in percent (0.01 to 50)")]
Tif = Annotated[Literal["gtc", "day", "ioc"], Field(
    description="gtc: until cancelled; day: until the session ends; "
                "ioc: limit orders only, fill now or cancel")]
OrderClass = Annotated[Literal["simple", "oco", "bracket"], Field(
    description="simple: one order; oco: this limit (take-profit) and a stop-loss leg, one fill cancels "
                "the other; bracket: this entry (market or limit) then take-profit and stop-loss exits")]
TakeProfit = Annotated[PositiveDecimal | None, Field(description="bracket: the take-profit exit's limit")]
StopLoss = Annotated[PositiveDecimal | None, Field(description="oco and bracket: the stop-loss leg's stop")]
StopLossLimit = Annotated[PositiveDecimal | None, Field(
    description="oco and bracket, optional: makes the stop-loss leg a stop-limit at this price")]
NewQty = Annotated[PositiveDecimal | None, Field(description="new quantity in base units")]
NewPrice = Annotated[PositiveDecimal | None, Field(description="new price (those the order's type takes)")]
Token = Annotated[str, Field(pattern=r"^pv_[A-Za-z0-9_\-]{16,64}$",
                             description="the token preview_order returned (single use, valid 30 s)")]
IdempotencyKey = Annotated[str | None, Field(
    min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$",
    description="optional: reuse the same key when retrying so the cancel is only requested once")]


class OrdersResult(BaseModel):
    orders: list[OrderView]
    count: int


class OrderCommandResult(BaseModel):
    command: CommandOutcome
    order: OrderView | None


async def _resolve_order_id(bridge: Bridge, order_id: str) -> str:
    if order_id.startswith("td-"):
        found = await bridge.reader.order_id_for_client_id(order_id)
        if found is None:
            raise ToolError(f"no order with client order id {order_id!r}; list_orders shows the ids")
        return found
    return order_id


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="Get an order", annotations=READ_ONLY)
    async def get_order(order_id: OrderId) -> OrderView:
        """One order by its id ('ord_...') or client order id ('td-...'): status, filled qty, average
        fill price, fees, reject reason."""
        oid = await _resolve_order_id(bridge, order_id)
        view = await bridge.reader.order(oid)
        if view is None:
            raise ToolError(f"no order {order_id!r}; list_orders shows the ids")
        return view

    @mcp.tool(title="Preview an order", annotations=READ_ONLY)
    async def preview_order(symbol: Symbol, side: SideParam, type: TypeParam, qty: Qty = None,
                            notional: Notional = None, limit_price: LimitPrice = None,
                            stop_price: StopPrice = None, time_in_force: Tif = "gtc",
                            trail_amount: TrailAmount = None, trail_percent: TrailPercent = None,
                            order_class: OrderClass = "simple", take_profit_price: TakeProfit = None,
                            stop_loss_price: StopLoss = None,
                            stop_loss_limit_price: StopLossLimit = None) -> PreviewResult:
        """Step 2 of trading (after get_quote): value an order without placing it.

        Returns the order rounded to the instrument's increments, the estimated price, fee and cost
        (or proceeds), balances afterwards, the risk verdict (allowed + reasons) and a single-use
        `token` valid for 30 s. Show the figures to the user; to execute call place_order with the
        token and the SAME order fields. If risk.allowed is false, change the order instead.
        """
        order = OrderFields(symbol=symbol, side=side, type=type, qty=qty, notional=notional,
                           limit_price=limit_price, stop_price=stop_price, time_in_force=time_in_force,
                           trail_amount=trail_amount, trail_percent=trail_percent, order_class=order_class,
                           take_profit_price=take_profit_price, stop_loss_price=stop_loss_price,
                           stop_loss_limit_price=stop_loss_limit_price)
        try:
            return await make_preview(bridge.reader, bridge.redis, bridge.settings, order)
        except (InputRejected, PreviewRefused) as e:
            raise ToolError(str(e)) from None

    @mcp.tool(title="Place an order", annotations=writes(destructive=False, idempotent=False))
    async def place_order(token: Token, symbol: Symbol, side: SideParam, type: TypeParam, qty: Qty = None,
                          notional: Notional = None, limit_price: LimitPrice = None,
                          stop_price: StopPrice = None, time_in_force: Tif = "gtc",
                          trail_amount: TrailAmount = None, trail_percent: TrailPercent = None,
                          order_class: OrderClass = "simple", take_profit_price: TakeProfit = None,
                          stop_loss_price: StopLoss = None,
                          stop_loss_limit_price: StopLossLimit = None) -> OrderCommandResult:
        """Step 3 of trading: place the order previewed with preview_order (paper account by default).

        Pass the preview's token and exactly the same order fields; the token is single use and
        expires after 30 s, so a changed order, a replayed or an expired token is refused (call
        preview_order again). Returns the command outcome and the order. If the outcome is
        'pending', do not place again: call get_command_status with the command_id.
        """
        order = OrderFields(symbol=symbol, side=side, type=type, qty=qty, notional=notional,
                           limit_price=limit_price, stop_price=stop_price, time_in_force=time_in_force,
                           trail_amount=trail_amount, trail_percent=trail_percent, order_class=order_class,
                           take_profit_price=take_profit_price, stop_loss_price=stop_loss_price,
                           stop_loss_limit_price=stop_loss_limit_price)
        try:
            command_id, spec = await consume_preview(bridge.redis, token, order)
        except PreviewRefused as e:
            raise ToolError(str(e)) from None
        cmd = PlaceOrder(command_id=command_id, symbol=spec.symbol, side=spec.side, type=spec.type,
                         qty=spec.qty, notional=spec.notional, limit_price=spec.limit_price,
                         stop_price=spec.stop_price, time_in_force=spec.time_in_force,
                         trail_amount=spec.trail_amount, trail_percent=spec.trail_percent,
                         order_class=spec.order_class, take_profit_price=spec.take_profit_price,
                         stop_loss_price=spec.stop_loss_price,
                         stop_loss_limit_price=spec.stop_loss_limit_price)
        result, view = await bridge.run_order_command(cmd)
        return OrderCommandResult(command=result, order=view)

    @mcp.tool(title="Cancel an order", annotations=writes(destructive=True, idempotent=True))
    async def cancel_order(order_id: OrderId, idempotency_key: IdempotencyKey = None) -> OrderCommandResult:
        """Cancel an open order (find ids with list_orders status='open'); locked funds are released.

        Always enabled: cancels only remove risk, so they are accepted even when trading is HALTED.
        An order that already filled or was cancelled cannot be cancelled (the error says so).
        """
        oid = await _resolve_order_id(bridge, order_id)
        command_id = f"cancel:{oid}:{idempotency_key}" if idempotency_key else new_command_id("cancel")
        result, view = await bridge.run_order_command(CancelOrder(command_id=command_id, order_id=oid), oid)
        return OrderCommandResult(command=result, order=view)

    async def _open_order(order_id: str) -> OrderView:
        oid = await _resolve_order_id(bridge, order_id)
        view = await bridge.reader.order(oid)
        if view is None:
            raise ToolError(f"no order {order_id!r}; list_orders shows the ids")
        return view

    @mcp.tool(title="Preview an order replacement",
              annotations={**READ_ONLY, "title": "Preview an order replacement"})
    async def preview_replace(order_id: OrderId, qty: NewQty = None, limit_price: NewPrice = None,
                              stop_price: NewPrice = None, trail_amount: TrailAmount = None,
                              trail_percent: TrailPercent = None) -> PreviewResult:
        """Value an amendment of an open order (new qty or prices; symbol, side and type stay) without
        placing it: the same figures and risk verdict as preview_order, the funds the order holds
        counted as free, and a single-use 30 s `token` for replace_order with the same changes.
        """
        view = await _open_order(order_id)
        try:
            return await preview_replacement(bridge.reader, bridge.redis, bridge.settings, view, {
                "qty": qty, "limit_price": limit_price, "stop_price": stop_price,
                "trail_amount": trail_amount, "trail_percent": trail_percent})
        except (InputRejected, PreviewRefused) as e:
            raise ToolError(str(e)) from None

    @mcp.tool(title="Replace an order",  # destructive: the order it replaces is cancelled
              annotations={**writes(destructive=True, idempotent=False), "title": "Replace an order"})
    async def replace_order(token: Token, order_id: OrderId, qty: NewQty = None, limit_price: NewPrice = None,
                            stop_price: NewPrice = None, trail_amount: TrailAmount = None,
                            trail_percent: TrailPercent = None) -> OrderCommandResult:
        """Replace an open order by the amendment previewed with preview_replace: the venue cancels it
        and books the replacement (a new order id) in one step, or leaves it untouched. Pass the
        token and the SAME order_id and changes. If the outcome is 'pending', do not repeat: call
        get_command_status with the command_id.
        """
        view = await _open_order(order_id)
        changes = {"qty": qty, "limit_price": limit_price, "stop_price": stop_price,
                   "trail_amount": trail_amount, "trail_percent": trail_percent}
        try:
            spec = replacement(view, changes)
            command_id, spec = await consume_preview(bridge.redis, token, spec, replaces=view.order_id)
        except (InputRejected, PreviewRefused) as e:
            raise ToolError(str(e)) from None
        cmd = ReplaceOrder(command_id=command_id, order_id=view.order_id, symbol=spec.symbol, side=spec.side,
                           type=spec.type, qty=spec.qty, notional=spec.notional, limit_price=spec.limit_price,
                           stop_price=spec.stop_price, time_in_force=spec.time_in_force,
                           trail_amount=spec.trail_amount, trail_percent=spec.trail_percent)
        result, new_view = await bridge.run_order_command(cmd)
        return OrderCommandResult(command=result, order=new_view)
