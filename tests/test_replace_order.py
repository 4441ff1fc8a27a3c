"""replace_order (issue 9, item 6c): amend a resting order's quantity or prices with a new preview
and token; the paper venue cancels the old order and books the replacement, under a client
order id derived from the command, in one transaction.

Through the MCP tools against the running daemon and worker, and at the venue and the job, the
cases that need a precise interleaving: a fill racing the replacement, and a job run twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from jobs.commands import PlaceOrder, ReplaceOrder
from jobs.domain.orders import client_order_id_for
from jobs.orders import place_order
from jobs.replace import replace_order
from jobs.venues.base import OrderRequest
from storage.models import OrderRow, PaperOrderRow
from storage.values import Quote
from tests.helpers import put_quote
from tests.test_order_types import _book_row, _content, _order, _place, order_stack

BTC = "BTC/USDT"


@pytest.fixture
async def stack(settings, redis) -> AsyncIterator[tuple[Any, Any, Any]]:
    async with order_stack(settings, redis) as s:
        yield s


async def _call(c: Any, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    result = await c.call_tool(tool, args, raise_on_error=False)
    if result.is_error:
        return None, " ".join(getattr(x, "text", "") for x in result.content or [])
    return _content(result), None


async def _usdt_locked(c: Any) -> Decimal:
    account = _content(await c.call_tool("get_account", {}))
    return next(Decimal(b["locked"]) for b in account["balances"] if b["asset"] == "USDT")


async def test_replace_amends_a_resting_limit_under_a_new_client_order_id(stack):
    c, d, reader = stack
    market = (await reader.quote(BTC)).ask
    limit = (market - 3000).quantize(Decimal("0.01"))
    placed = await _place(c, {"symbol": BTC, "side": "buy", "type": "limit", "qty": "0.01",
                              "limit_price": str(limit)})
    old = placed["order"]
    assert old["status"] == "open"
    new_limit = limit - 100
    preview, err = await _call(c, "preview_replace", {"order_id": old["order_id"], "qty": "0.02",
                                                      "limit_price": str(new_limit)})
    assert err is None, err
    assert preview["replaces"] == old["order_id"] and preview["risk"]["allowed"]
    assert Decimal(preview["order"]["qty"]) == Decimal("0.02") and preview["execution"] == "rests"
    assert "replace_order" in preview["next_step"]
    # the token binds the exact amendment: another qty is refused, and the token is gone
    _, refused = await _call(c, "replace_order", {"token": preview["token"], "order_id": old["order_id"],
                                                  "qty": "0.03", "limit_price": str(new_limit)})
    assert refused is not None and "differs from the preview" in refused, refused
    preview, _ = await _call(c, "preview_replace", {"order_id": old["order_id"], "qty": "0.02",
                                                    "limit_price": str(new_limit)})
    done, err = await _call(c, "replace_order", {"token": preview["token"], "order_id": old["order_id"],
                                                 "qty": "0.02", "limit_price": str(new_limit)})
    assert err is None, err
    assert done["command"]["status"] == "succeeded", done
    new = done["order"]
    assert new["order_id"] != old["order_id"] and new["replaces"] == old["order_id"]
    assert new["client_order_id"] == client_order_id_for(done["command"]["command_id"])
    assert new["status"] == "open" and Decimal(new["limit_price"]) == new_limit
    assert Decimal(new["qty"]) == Decimal("0.02")
    assert (await _order(c, old["order_id"]))["status"] == "cancelled"
    assert (await _book_row(d, old["client_order_id"])).status == "cancelled"
    assert (await _book_row(d, new["client_order_id"])).status == "open"
    # only the replacement's funds stay locked (qty x limit with the fee; shown to the cent)
    expected = Decimal("0.02") * new_limit * (1 + Decimal(10) / 10_000)
    assert abs(await _usdt_locked(c) - expected) < Decimal("0.01")


async def test_tokens_are_for_their_own_tool_and_order_and_closed_orders_cannot_be_replaced(stack):
    c, _, reader = stack
    market = (await reader.quote(BTC)).ask
    limit = str((market - 3000).quantize(Decimal("0.01")))
    old = (await _place(c, {"symbol": BTC, "side": "buy", "type": "limit", "qty": "0.01",
                            "limit_price": limit}))["order"]
    # a new order's token cannot replace, nor a replacement's token place
    new_order = {"symbol": BTC, "side": "buy", "type": "limit", "qty": "0.02", "limit_price": limit}
    pv, _ = await _call(c, "preview_order", new_order)
    _, refused = await _call(c, "replace_order", {"token": pv["token"], "order_id": old["order_id"],
                                                  "qty": "0.02"})
    assert refused is not None and "call preview_replace" in refused, refused
    pr, _ = await _call(c, "preview_replace", {"order_id": old["order_id"], "qty": "0.02"})
    _, refused = await _call(c, "place_order", {**new_order, "token": pr["token"]})
    assert refused is not None and "use it with replace_order" in refused, refused
    # nothing to change, a field the type does not take, a market order
    _, refused = await _call(c, "preview_replace", {"order_id": old["order_id"]})
    assert refused is not None and "give at least one of" in refused
    _, refused = await _call(c, "preview_replace", {"order_id": old["order_id"], "limit_price": limit})
    assert refused is not None and "changes nothing" in refused
    _, refused = await _call(c, "preview_replace", {"order_id": old["order_id"], "stop_price": "1"})
    assert refused is not None and "takes limit_price, not stop_price" in refused
    market_order = (await _place(c, {"symbol": BTC, "side": "buy", "type": "market",
                                     "qty": "0.001"}))["order"]
    _, refused = await _call(c, "preview_replace", {"order_id": market_order["order_id"], "qty": "0.002"})
    assert refused is not None and "market order" in refused
    await c.call_tool("cancel_order", {"order_id": old["order_id"]})
    _, refused = await _call(c, "preview_replace", {"order_id": old["order_id"], "qty": "0.02"})
    assert refused is not None and "is cancelled; only an open order can be replaced" in refused


# --- the venue and the job, with the interleavings set up exactly

def _req(cid: str, limit: Decimal, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(cid, BTC, "buy", "limit", "gtc", Decimal(qty), None, limit)


async def test_a_fill_and_a_replacement_race_for_the_order_and_exactly_one_wins(res, redis):
    await put_quote(redis, BTC, "60000.00", "60010.00")
    venue = res.venues["paper"]
    crossing = Quote(BTC, Decimal("49000"), Decimal("49001"), Decimal(1), Decimal(1), datetime.now(UTC))
    # the fill first: the replacement is refused, the order stays filled, nothing new rests
    await venue.submit_order(_req("td-a", Decimal("50000")))
    _, filled, _ = await venue.fill_resting("td-a", crossing)
    assert filled is not None and filled.status == "filled"
    old, new = await venue.replace_order("td-a", _req("td-a2", Decimal("49500")))
    assert old is not None and old.status == "filled" and len(old.fills) == 1
    assert new.status == "rejected" and "order is filled: nothing to replace" in (new.reject_reason or "")
    # the replacement first: the fill finds the old order cancelled and fills nothing
    await venue.submit_order(_req("td-b", Decimal("50000")))
    old, new = await venue.replace_order("td-b", _req("td-b2", Decimal("48000")))
    assert old is not None and old.status == "cancelled" and new.status == "open"
    assert await venue.fill_resting("td-b", crossing) == (None, None, [])
    assert (await venue.get_order("td-b")).fills == []
    # asked again (a re-run), the venue answers what it did, and books nothing twice
    again_old, again_new = await venue.replace_order("td-b", _req("td-b2", Decimal("48000")))
    assert again_new.venue_order_id == new.venue_order_id and again_old.status == "cancelled"


async def test_a_replace_job_run_twice_replaces_once(res, redis, sessions):
    await put_quote(redis, BTC, "60000.00", "60010.00")
    placed = await place_order(res, PlaceOrder(command_id="t:place", symbol=BTC, side="buy", type="limit",
                                               qty=Decimal("0.01"), limit_price=Decimal("50000")))
    assert placed.status == "succeeded", placed
    cmd = ReplaceOrder(command_id="t:replace", order_id=placed.order_id, symbol=BTC, side="buy", type="limit",
                       qty=Decimal("0.01"), limit_price=Decimal("49000"))
    first = await replace_order(res, cmd)
    second = await replace_order(res, cmd)
    assert first.status == second.status == "succeeded", (first, second)
    assert first.order_id == second.order_id != placed.order_id
    async with sessions() as s:
        orders = {o.id: o for o in (await s.execute(select(OrderRow))).scalars()}
        book = {o.client_order_id: o for o in (await s.execute(select(PaperOrderRow))).scalars()}
    assert len(orders) == 2 and len(book) == 2
    assert orders[placed.order_id].status == "cancelled"
    assert orders[first.order_id].status == "open" and orders[first.order_id].replaces == placed.order_id
    assert book[client_order_id_for("t:replace")].limit_price == Decimal("49000")
