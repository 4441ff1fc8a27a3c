"""Orders: look up, preview (valuation + risk + a 30 s token), place with the token, cancel, replace."""

from __future__ import annotations

from typing import Annotated, Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.commands import CancelOrder, OrderFields, PlaceOrder, ReplaceOrder, new_command_id
from jobs.domain.orders import OrderClass
from jobs.preview import (
    InputRejected,
    PreviewRefused,
    PreviewResult,
    consume_preview,
    make_preview,
)
from jobs.replace_preview import preview_replacement, replacement
from mcp_bridge.context import (
    READ_ONLY,
    Bridge,
    CommandOutcome,
    OptionalPositiveDecimal,
    Symbol,
    writes,
)
from mcp_bridge.param_schema import CompactSchema
from storage.state.views import OrderView
from storage.values import OrderType, Side, TimeInForce

# an order id or a client order id: the pattern says which prefixes
OrderId = Annotated[str, Field(min_length=4, max_length=64, pattern=r"^(ord_|td-)[A-Za-z0-9_\-]+$")]
Amount = OptionalPositiveDecimal  # a quantity or a price, optional
# preview_order describes the order fields; place_order takes the same ones bare (its description
# sends the assistant to the preview), so tools/list does not say it all twice
SideParam = Annotated[Side, Field(description="no short selling")]
TypeParam = Annotated[OrderType, Field(description="trailing_stop: trail_amount or trail_percent")]
Qty = Annotated[OptionalPositiveDecimal, Field(description="base units; give qty or notional")]
Notional = Annotated[OptionalPositiveDecimal, Field(description="quote currency; market buys only")]
Tif = Annotated[TimeInForce, Field(description="ioc: limit only")]
OrderClassParam = Annotated[OrderClass, Field(
    description="oco: + stop_loss_price leg; bracket: + take_profit_price, stop_loss_price exits")]
Token = Annotated[str, Field(pattern=r"^pv_[A-Za-z0-9_\-]{16,64}$")]  # the preview's
IdempotencyKey = Annotated[str | None, Field(
    min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$",
    description="same key on a retry: cancels once"), CompactSchema()]


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


async def _find_order(bridge: Bridge, order_id: str) -> OrderView:
    """The order an order id or client order id names, or a ToolError the assistant can act on."""
    view = await bridge.reader.order(await _resolve_order_id(bridge, order_id))
    if view is None:
        raise ToolError(f"no order {order_id!r}; list_orders shows the ids")
    return view


def _order_fields(arguments: dict[str, Any]) -> OrderFields:
    """The order in a tool's arguments (its locals() on entry). preview_order and place_order name
    their parameters after OrderFields' fields, so both build the order they compare the same way."""
    return OrderFields(**{name: arguments[name] for name in OrderFields.model_fields})


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="Get an order", annotations=READ_ONLY)
    async def get_order(order_id: OrderId) -> OrderView:
        """One order by id: status, filled qty, average fill price, fees, reject reason."""
        return await _find_order(bridge, order_id)

    @mcp.tool(title="Preview an order", annotations=READ_ONLY)
    async def preview_order(symbol: Symbol, side: SideParam, type: TypeParam, qty: Qty = None,
                            notional: Notional = None, limit_price: Amount = None,
                            stop_price: Amount = None, time_in_force: Tif = "gtc",
                            trail_amount: Amount = None, trail_percent: Amount = None,
                            order_class: OrderClassParam = "simple", take_profit_price: Amount = None,
                            stop_loss_price: Amount = None,
                            stop_loss_limit_price: Amount = None) -> PreviewResult:
        """Value an order without placing it and get a single-use 30 s `token` for place_order with
        the SAME fields. If risk.allowed is false, change the order instead."""
        order = _order_fields(locals())
        try:
            return await make_preview(bridge.reader, bridge.redis, bridge.settings, order)
        except (InputRejected, PreviewRefused) as e:
            raise ToolError(str(e)) from None

    @mcp.tool(title="Place an order", annotations=writes(destructive=False, idempotent=False))
    async def place_order(token: Token, symbol: Symbol, side: Side, type: OrderType, qty: Amount = None,
                          notional: Amount = None, limit_price: Amount = None,
                          stop_price: Amount = None, time_in_force: TimeInForce = "gtc",
                          trail_amount: Amount = None, trail_percent: Amount = None,
                          order_class: OrderClass = "simple", take_profit_price: Amount = None,
                          stop_loss_price: Amount = None,
                          stop_loss_limit_price: Amount = None) -> OrderCommandResult:
        """Place an order previewed by preview_order, with its token (single use, 30 s) and exactly
        the same fields, or it is refused (preview again). If the outcome is 'pending', do not place
        again: call get_command_status(command_id)."""
        order = _order_fields(locals())
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
        """Cancel an open order (ids: list_orders status='open'), releasing its locked funds.
        Allowed even when trading is HALTED."""
        oid = await _resolve_order_id(bridge, order_id)
        command_id = f"cancel:{oid}:{idempotency_key}" if idempotency_key else new_command_id("cancel")
        result, view = await bridge.run_order_command(CancelOrder(command_id=command_id, order_id=oid), oid)
        return OrderCommandResult(command=result, order=view)

    @mcp.tool(title="Preview an order replacement",
              annotations={**READ_ONLY, "title": "Preview an order replacement"})
    async def preview_replace(order_id: OrderId, qty: Amount = None, limit_price: Amount = None,
                              stop_price: Amount = None, trail_amount: Amount = None,
                              trail_percent: Amount = None) -> PreviewResult:
        """Value a change of an open order's qty or prices as preview_order does, and get a
        single-use 30 s `token` for replace_order with the same changes."""
        view = await _find_order(bridge, order_id)
        try:
            return await preview_replacement(bridge.reader, bridge.redis, bridge.settings, view, {
                "qty": qty, "limit_price": limit_price, "stop_price": stop_price,
                "trail_amount": trail_amount, "trail_percent": trail_percent})
        except (InputRejected, PreviewRefused) as e:
            raise ToolError(str(e)) from None

    @mcp.tool(title="Replace an order",  # destructive: the order it replaces is cancelled
              annotations={**writes(destructive=True, idempotent=False), "title": "Replace an order"})
    async def replace_order(token: Token, order_id: OrderId, qty: Amount = None, limit_price: Amount = None,
                            stop_price: Amount = None, trail_amount: Amount = None,
                            trail_percent: Amount = None) -> OrderCommandResult:
        """Replace an open order as preview_replace valued it (its token, the SAME order_id and
        changes); the replacement gets a new order id. If the outcome is 'pending', do not repeat:
        call get_command_status(command_id)."""
        view = await _find_order(bridge, order_id)
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
