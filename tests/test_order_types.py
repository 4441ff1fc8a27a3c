"""Stop-limit and trailing-stop orders (issue 9, item 6): the matching rules directly, as
properties over random quote paths, and end to end through the MCP tools against the running
daemon (whose paper host matches resting orders on each quote) and worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from fastmcp import Client
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from jobs.commands import CancelOrder, PlaceOrder
from jobs.domain.instruments import get_instrument
from jobs.domain.order_lists import legs, sibling_after
from jobs.domain.orders import OrderSpec, OrderSpecError, client_order_id_for, normalize_order
from jobs.orders import cancel_order, place_order, reconcile_open_orders
from jobs.venues.paper.lists import cascade
from jobs.venues.paper.matching import BookState, step, trailing_stop_price
from mcp_bridge.server import build_server
from storage.models import BalanceRow, FillRow, OrderRow, PaperFillRow, PaperOrderRow
from storage.state import keys
from storage.state.reader import StateReader
from storage.values import Quote
from tests.helpers import put_quote
from tests.stack import eventually, running_daemon, running_worker


def _matching(d):
    """The paper venue's matching loop in the daemon `d` (started by the venue registry)."""
    return d.res.venues.background["paper"]

SLIP = Decimal(2)
PRICES = st.decimals(min_value=Decimal(90), max_value=Decimal(110), places=2)


def _quote(bid: Decimal, spread: Decimal = Decimal("0.1")) -> Quote:
    return Quote("BTC/USDT", bid, bid + spread, Decimal(1), Decimal(1), datetime.now(UTC))


def _walk(order: BookState, bids: list[Decimal]) -> tuple[int | None, list[BookState], Any]:
    """Apply quotes until one fills: (index of the filling quote or None, states seen, the fill)."""
    states = []
    for i, bid in enumerate(bids):
        moved = step(order, _quote(bid), SLIP, resting=i > 0)
        order = moved.state
        states.append(order)
        if moved.fill is not None:
            return i, states, moved.fill
    return None, states, None


# --- stop-limit, pure

@given(side=st.sampled_from(["buy", "sell"]), stop=PRICES, offset=st.decimals(-5, 5, places=2),
       bids=st.lists(PRICES, min_size=1, max_size=40))
def test_a_stop_limit_fills_only_after_its_stop_and_never_beyond_its_limit(side, stop, offset, bids):
    limit = stop + offset
    at, states, fill = _walk(BookState(side, "stop_limit", limit_price=limit, stop_price=stop), bids)
    touched = [(b + Decimal("0.1") >= stop) if side == "buy" else (b <= stop) for b in bids]
    first_touch = touched.index(True) if True in touched else None
    if first_touch is None:
        assert at is None and not any(s.triggered for s in states)
        return
    # untriggered before the first touch, triggered from it on, and never a fill before it
    assert [s.triggered for s in states] == [i >= first_touch for i in range(len(states))]
    if at is not None:
        assert at >= first_touch
        price, liquidity = fill
        assert price <= limit if side == "buy" else price >= limit
        assert liquidity == ("taker" if at == first_touch else "maker")


def test_a_stop_limit_triggered_through_its_limit_rests_then_fills_at_its_limit():
    order = BookState("buy", "stop_limit", limit_price=Decimal(101), stop_price=Decimal(100))
    below = step(order, _quote(Decimal(99)), SLIP, resting=True)  # a plain limit at 101 would fill here
    assert below.fill is None and not below.state.triggered
    gap = step(order, _quote(Decimal(102)), SLIP, resting=True)  # ask 102.1: stop touched, limit not
    assert gap.fill is None and gap.state.triggered and gap.changed
    back = step(gap.state, _quote(Decimal(100)), SLIP, resting=True)
    assert back.fill == (Decimal(101), "maker")


# --- trailing stop, pure

@given(side=st.sampled_from(["buy", "sell"]),
       trail=st.decimals(min_value=Decimal("0.5"), max_value=5, places=2),
       percent=st.booleans(), bids=st.lists(PRICES, min_size=1, max_size=60))
def test_a_trailing_stop_follows_the_best_price_and_triggers_on_a_retrace_by_the_trail(
        side, trail, percent, bids):
    order = BookState(side, "trailing_stop", trail_amount=None if percent else trail,
                      trail_percent=trail if percent else None)
    at, states, fill = _walk(order, bids)
    asks = [b + Decimal("0.1") for b in bids]
    seen = bids if side == "sell" else asks
    for i, s in enumerate(states):
        best = max(seen[: i + 1]) if side == "sell" else min(seen[: i + 1])
        assert s.trail_anchor == best
        assert s.stop_price == trailing_stop_price(side, best, trail_amount=order.trail_amount,
                                                   trail_percent=order.trail_percent)
    # the first quote that reaches the stop of the best price so far fills it, and no earlier one
    def reached(i: int) -> bool:
        stop = states[i].stop_price
        return bids[i] <= stop if side == "sell" else asks[i] >= stop
    expected = next((i for i in range(len(states)) if reached(i)), None)
    assert at == expected
    if at is not None:
        assert fill[1] == "taker"
        assert at > 0  # never on the quote that set the anchor (the first one)


# --- end to end: the tools, the worker and the daemon's paper host

@asynccontextmanager
async def order_stack(settings, redis) -> AsyncIterator[tuple[Client, Any, StateReader]]:
    """The MCP client on the bridge, with the daemon (simulated market, paper host) and a worker."""
    async with running_daemon(settings) as d, running_worker(settings):
        reader = StateReader(redis)
        await eventually(lambda: reader.quote("BTC/USDT"), timeout=10)
        await eventually(lambda: redis.hlen(keys.BALANCES), timeout=20)
        async with Client(build_server(settings)) as c:
            yield c, d, reader


@pytest.fixture
async def stack(settings, redis) -> AsyncIterator[tuple[Client, Any, StateReader]]:
    async with order_stack(settings, redis) as s:
        yield s


async def _place(c: Client, order: dict[str, Any]) -> dict[str, Any]:
    result = await c.call_tool("preview_order", order, raise_on_error=False)
    assert not result.is_error, result.content
    preview = _content(result)
    assert preview["risk"]["allowed"], preview
    placed = _content(await c.call_tool("place_order", {**order, "token": preview["token"]}))
    assert placed["command"]["status"] == "succeeded", placed
    return {"preview": preview, **placed}


async def _book_row(d: Any, client_order_id: str) -> PaperOrderRow:
    async with d.res.sessions() as s:
        return (await s.execute(select(PaperOrderRow).where(
            PaperOrderRow.client_order_id == client_order_id))).scalar_one()


async def _order(c: Client, order_id: str) -> dict[str, Any]:
    r = await c.call_tool("get_order", {"order_id": order_id}, raise_on_error=False)
    assert not r.is_error, r.content
    return _content(r)


async def test_a_stop_limit_waits_for_its_stop_then_rests_and_fills_at_its_limit(stack):
    c, d, reader = stack
    market = (await reader.quote("BTC/USDT")).ask
    stop, limit = (market + 2000).quantize(Decimal("0.01")), (market + 2100).quantize(Decimal("0.01"))
    placed = await _place(c, {"symbol": "BTC/USDT", "side": "buy", "type": "stop_limit", "qty": "0.01",
                              "stop_price": str(stop), "limit_price": str(limit)})
    assert placed["preview"]["execution"] == "waits_for_stop"
    order = placed["order"]
    assert order["type"] == "stop_limit" and order["status"] == "open"
    await _matching(d).refresh()
    # the market is below the limit all along: a plain limit would have filled; this one waits
    for _ in range(10):
        await _matching(d).on_quotes([_quote_at(market)])
    await eventually(lambda: _wait(0.3), timeout=2)
    assert (await _order(c, order["order_id"]))["status"] == "open"
    assert not (await _book_row(d, order["client_order_id"])).triggered
    # the ask jumps through stop and limit: triggered, not filled; the next quotes (the market
    # back below the limit) fill it at its limit, as a resting maker
    await _matching(d).on_quotes([_quote_at(limit + 100)])
    filled = await eventually(lambda: _status(c, order["order_id"], "filled"), timeout=10)
    assert Decimal(filled["avg_fill_price"]) == limit
    assert (await _book_row(d, order["client_order_id"])).triggered


async def test_a_trailing_stop_buy_follows_the_ask_down_and_fills_on_the_retrace(stack):
    c, d, reader = stack
    market = (await reader.quote("BTC/USDT")).ask
    placed = await _place(c, {"symbol": "BTC/USDT", "side": "buy", "type": "trailing_stop", "qty": "0.01",
                              "trail_amount": "1500"})
    assert placed["preview"]["execution"] == "waits_for_stop"
    order = placed["order"]
    assert order["type"] == "trailing_stop" and order["status"] == "open"
    row = await _book_row(d, order["client_order_id"])
    assert row.trail_anchor is not None and row.stop_price == row.trail_anchor + 1500
    await _matching(d).refresh()
    low = (market - 500).quantize(Decimal("0.01"))
    await _matching(d).on_quotes([_quote_at(low)])  # the ask drops: the stop follows it down

    async def followed() -> PaperOrderRow | None:
        r = await _book_row(d, order["client_order_id"])
        return r if r.trail_anchor == low else None

    row = await eventually(followed, timeout=5)
    assert row.stop_price == low + 1500 and row.status == "open"
    trigger = low + 1500 + 1
    await _matching(d).on_quotes([_quote_at(trigger)])
    filled = await eventually(lambda: _status(c, order["order_id"], "filled"), timeout=10)
    taker = get_instrument("BTC/USDT").round_price(trigger * (1 + SLIP / 10_000))
    assert Decimal(filled["avg_fill_price"]) == taker


async def test_new_types_refuse_what_they_cannot_use(stack):
    c, _, _ = stack
    cases = [
        ({"type": "stop_limit", "stop_price": "1"}, "a stop_limit order needs stop_price and limit_price"),
        ({"type": "trailing_stop"}, "exactly one of trail_amount"),
        ({"type": "trailing_stop", "trail_amount": "5", "trail_percent": "1"}, "exactly one of trail_amount"),
        ({"type": "trailing_stop", "trail_percent": "60"}, "trail_percent 60 is too large"),
        ({"type": "limit", "limit_price": "1", "trail_amount": "5"}, "takes limit_price, not trail_amount"),
    ]
    for fields, message in cases:
        result = await c.call_tool("preview_order", {"symbol": "BTC/USDT", "side": "buy", "qty": "0.01",
                                                     **fields}, raise_on_error=False)
        assert result.is_error and message in result.content[0].text, (fields, result.content[0].text)


def _content(result: Any) -> dict[str, Any]:
    """A tool's structured answer (fastmcp wraps one whose schema is not an object in "result")."""
    sc = result.structured_content
    return sc["result"] if set(sc) == {"result"} else sc


def _quote_at(ask: Decimal) -> Quote:
    return Quote("BTC/USDT", ask - Decimal("0.1"), ask, Decimal(1), Decimal(1), datetime.now(UTC))


async def _wait(s: float) -> bool:
    import asyncio
    await asyncio.sleep(s)
    return True


async def _status(c: Client, order_id: str, status: str) -> dict[str, Any] | None:
    o = await _order(c, order_id)
    return o if o["status"] == status else None


# --- OCO and brackets

def test_legs_of_a_bracket_and_an_oco():
    bracket = normalize_order(OrderSpec("BTC/USDT", "buy", "market", Decimal("0.01"), order_class="bracket",
                                        take_profit_price=Decimal(61000), stop_loss_price=Decimal(59000),
                                        stop_loss_limit_price=Decimal(58900)), get_instrument("BTC/USDT"))
    entry, tp, sl = legs(bracket, "c1")
    assert (entry.name, entry.spec.side, entry.spec.type, entry.held) == ("entry", "buy", "market", False)
    assert (tp.spec.side, tp.spec.type, tp.spec.limit_price, tp.held) == (
        "sell", "limit", Decimal(61000), True)
    assert (sl.spec.type, sl.spec.stop_price, sl.spec.limit_price, sl.held) == (
        "stop_limit", Decimal(59000), Decimal(58900), True)
    assert entry.client_order_id == client_order_id_for("c1") != tp.client_order_id != sl.client_order_id
    oco = normalize_order(OrderSpec("BTC/USDT", "sell", "limit", Decimal("0.01"), None, Decimal(61000),
                                    order_class="oco", stop_loss_price=Decimal(59000)),
                          get_instrument("BTC/USDT"))
    assert [(leg.name, leg.spec.side, leg.spec.type, leg.held) for leg in legs(oco, "c2")] == [
        ("take_profit", "sell", "limit", False), ("stop_loss", "sell", "stop", False)]


@pytest.mark.parametrize(("fields", "message"), [
    ({"side": "buy", "type": "market", "order_class": "bracket", "take_profit_price": 59000,
      "stop_loss_price": 61000}, "the stop-loss 61000.00 must be below the take-profit 59000.00"),
    ({"side": "buy", "type": "limit", "limit_price": 62000, "order_class": "bracket",
      "take_profit_price": 61000, "stop_loss_price": 59000}, "must lie between its stop-loss"),
    ({"side": "sell", "type": "limit", "limit_price": 61000, "order_class": "oco",
      "take_profit_price": 61000, "stop_loss_price": 59000}, "no take_profit_price"),
    ({"side": "buy", "type": "stop", "stop_price": 61000, "order_class": "bracket",
      "take_profit_price": 62000, "stop_loss_price": 59000}, "a bracket's entry is a market or limit order"),
    ({"side": "buy", "type": "market", "take_profit_price": 61000}, "are for order_class bracket or oco"),
    ({"side": "buy", "type": "market", "order_class": "bracket", "take_profit_price": 61000},
     "stop_loss_price"),
])
def test_order_lists_refuse_legs_on_the_wrong_side(fields, message):
    prices = {k: Decimal(v) for k, v in fields.items() if isinstance(v, int)}
    spec = OrderSpec("BTC/USDT", fields["side"], fields["type"], Decimal("0.01"),
                     order_class=fields.get("order_class", "simple"), **prices)
    with pytest.raises(OrderSpecError, match=message):
        normalize_order(spec, get_instrument("BTC/USDT"))


@dataclass(frozen=True)
class _Leg:
    leg: str
    status: str
    triggered: bool = False


def _book(*legs: tuple[str, str, str]) -> dict[str, _Leg]:
    """Legs by client order id, as the venue locks them: (client order id, leg, status)."""
    return {cid: _Leg(leg, status) for cid, leg, status in legs}


def test_one_leg_acts_on_the_others():
    book = _book(("e", "entry", "filled"), ("t", "take_profit", "held"), ("s", "stop_loss", "held"))
    # the entry fills: both exits open and are matched at once; the take-profit fills, the stop goes
    fills = cascade(book, "e", "filled", lambda cid: "fill" if cid == "t" else None)
    assert fills == {"t": "fill"} and (book["t"].status, book["s"].status) == ("open", "cancelled")
    book = _book(("t", "take_profit", "open"), ("s", "stop_loss", "open"))
    assert cascade(book, "s", "triggered", lambda cid: None) == {} and book["t"].status == "cancelled"
    book = _book(("e", "entry", "cancelled"), ("t", "take_profit", "held"), ("s", "stop_loss", "held"))
    cascade(book, "e", "cancelled", lambda cid: None)
    assert (book["t"].status, book["s"].status) == ("cancelled", "cancelled")
    assert sibling_after("stop_loss", "filled", "filled") is None  # a closed leg stays closed


async def _legs_of(c: Client, command_id: str) -> dict[str, dict[str, Any]]:
    return {leg: await _order(c, client_order_id_for(f"{command_id}:{leg}"))
            for leg in ("take_profit", "stop_loss")}


async def test_a_bracket_buy_opens_its_exits_and_the_take_profit_cancels_the_stop_loss(stack):
    c, d, reader = stack
    market = (await reader.quote("BTC/USDT")).ask
    tp, sl = (market + 1500).quantize(Decimal("0.01")), (market - 1500).quantize(Decimal("0.01"))
    placed = await _place(c, {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.01",
                              "order_class": "bracket", "take_profit_price": str(tp),
                              "stop_loss_price": str(sl)})
    assert placed["preview"]["order"]["order_class"] == "bracket"
    entry = placed["order"]
    assert entry["status"] == "filled" and entry["leg"] == "entry"
    command_id = placed["command"]["command_id"]
    exits = await _legs_of(c, command_id)
    assert {leg: o["status"] for leg, o in exits.items()} == {"take_profit": "open", "stop_loss": "open"}
    assert all(o["order_list_id"] == entry["client_order_id"] and o["side"] == "sell" for o in exits.values())
    # the two exits never both fill: only the stop-loss holds the BTC bought
    balances = _content(await c.call_tool("get_account", {}))["balances"]
    assert Decimal(next(b["locked"] for b in balances if b["asset"] == "BTC")) == Decimal("0.01")
    await _matching(d).refresh()
    await _matching(d).on_quotes([Quote("BTC/USDT", tp + 1, tp + 2, Decimal(1), Decimal(1),
                                         datetime.now(UTC))])

    async def closed() -> dict[str, dict[str, Any]] | None:
        now = await _legs_of(c, command_id)
        return now if {o["status"] for o in now.values()} == {"filled", "cancelled"} else None

    exits = await eventually(closed, timeout=10)
    assert exits["take_profit"]["status"] == "filled"
    assert Decimal(exits["take_profit"]["avg_fill_price"]) == tp
    assert exits["stop_loss"]["status"] == "cancelled"
    positions = _content(await c.call_tool("get_positions", {}))
    assert all(Decimal(p["qty"]) == 0 for p in positions["positions"] if p["symbol"] == "BTC/USDT")


async def test_an_oco_sell_whose_stop_limit_triggers_cancels_its_take_profit(stack):
    c, d, reader = stack
    await _place(c, {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.01"})
    market = (await reader.quote("BTC/USDT")).bid
    tp, stop, limit = (market + 1500).quantize(Decimal("0.01")), (market - 1500).quantize(Decimal("0.01")), \
        (market - 1600).quantize(Decimal("0.01"))
    placed = await _place(c, {"symbol": "BTC/USDT", "side": "sell", "type": "limit", "qty": "0.01",
                              "limit_price": str(tp), "order_class": "oco", "stop_loss_price": str(stop),
                              "stop_loss_limit_price": str(limit)})
    take_profit = placed["order"]
    assert take_profit["leg"] == "take_profit" and take_profit["status"] == "open"
    stop_loss = await _order(c, client_order_id_for(f"{placed['command']['command_id']}:stop_loss"))
    assert stop_loss["type"] == "stop_limit" and stop_loss["status"] == "open"
    await _matching(d).refresh()
    bid = stop - 10  # through the stop, above the stop-loss's limit: it fills at once as a taker
    await _matching(d).on_quotes([Quote("BTC/USDT", bid, bid + 1, Decimal(1), Decimal(1), datetime.now(UTC))])
    filled = await eventually(lambda: _status(c, stop_loss["order_id"], "filled"), timeout=10)
    assert Decimal(filled["avg_fill_price"]) == bid
    assert (await eventually(lambda: _status(c, take_profit["order_id"], "cancelled"), timeout=10))


async def test_cancelling_a_brackets_entry_cancels_its_held_exits(stack):
    c, _, reader = stack
    market = (await reader.quote("BTC/USDT")).ask
    entry_price = (market - 3000).quantize(Decimal("0.01"))
    placed = await _place(c, {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "qty": "0.01",
                              "limit_price": str(entry_price), "order_class": "bracket",
                              "take_profit_price": str(entry_price + 1000),
                              "stop_loss_price": str(entry_price - 1000)})
    command_id = placed["command"]["command_id"]
    assert placed["order"]["status"] == "open"
    assert {o["status"] for o in (await _legs_of(c, command_id)).values()} == {"held"}
    await c.call_tool("cancel_order", {"order_id": placed["order"]["order_id"]})
    assert {o["status"] for o in (await _legs_of(c, command_id)).values()} == {"cancelled"}
    assert (await _order(c, placed["order"]["order_id"]))["status"] == "cancelled"


async def test_a_fill_the_daemon_did_not_hand_on_is_booked_with_its_cancelled_leg_after_a_restart(res, redis,
                                                                                                  sessions):
    """The paper venue fills the take-profit and cancels the stop-loss in one transaction; the daemon
    dies before queueing their syncs. The reconciliation a restarted daemon runs books both, once."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    cmd = PlaceOrder(command_id="t:bracket", symbol="BTC/USDT", side="buy", type="market",
                     qty=Decimal("0.01"), order_class="bracket", take_profit_price=Decimal(61000),
                     stop_loss_price=Decimal(59000))
    assert (await place_order(res, cmd)).status == "succeeded"
    tp, sl = client_order_id_for("t:bracket:take_profit"), client_order_id_for("t:bracket:stop_loss")
    crossing = Quote("BTC/USDT", Decimal(61001), Decimal(61002), Decimal(1), Decimal(1), datetime.now(UTC))
    _, state, others = await res.venues["paper"].fill_resting(tp, crossing)
    assert state is not None and state.status == "filled" and others == [sl]
    assert await res.venues["paper"].fill_resting(sl, crossing) == (None, None, [])  # cancelled: never fills
    await reconcile_open_orders(res)
    await reconcile_open_orders(res)  # a second pass changes nothing
    async with sessions() as s:
        orders = {o.client_order_id: o for o in (await s.execute(select(OrderRow))).scalars()}
        fills = (await s.execute(select(FillRow))).scalars().all()
        book_fills = (await s.execute(select(PaperFillRow))).scalars().all()
    assert orders[tp].status == "filled" and orders[sl].status == "cancelled"
    assert len(fills) == len(book_fills) == 2  # the entry and the take-profit, once each


async def test_a_resting_bracket_entry_that_fills_opens_its_exits_in_the_same_transaction(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    cmd = PlaceOrder(command_id="t:limit-bracket", symbol="BTC/USDT", side="buy", type="limit",
                     qty=Decimal("0.01"), limit_price=Decimal(59000), order_class="bracket",
                     take_profit_price=Decimal(62000), stop_loss_price=Decimal(58000))
    assert (await place_order(res, cmd)).status == "succeeded"
    entry = client_order_id_for("t:limit-bracket")
    tp, sl = (client_order_id_for(f"t:limit-bracket:{leg}") for leg in ("take_profit", "stop_loss"))
    assert {(await res.venues["paper"].get_order(c)).status for c in (tp, sl)} == {"held"}
    crossing = Quote("BTC/USDT", Decimal(58990), Decimal(58995), Decimal(1), Decimal(1), datetime.now(UTC))
    _, state, others = await res.venues["paper"].fill_resting(entry, crossing)
    assert state is not None and state.status == "filled" and sorted(others) == sorted([tp, sl])
    assert {(await res.venues["paper"].get_order(c)).status for c in (tp, sl)} == {"open"}
    assert {o.client_order_id for o in await res.venues["paper"].resting_orders()} == {tp, sl}


async def _usdt(sessions) -> tuple[Decimal, Decimal]:
    async with sessions() as s:
        row = await s.get(BalanceRow, ("paper", "USDT"))
    assert row is not None
    return row.total, row.locked


@pytest.mark.parametrize("ends", ["filled", "cancelled"])
async def test_a_resting_buy_trailing_stop_locks_quote_at_its_stop_until_it_ends(res, redis, sessions, ends):
    """Placed with the ask at 60010 and a 1500 trail, the venue holds its stop at 61510: the order
    locks 0.01 x 61510 plus the fee, as a stop buy at 61510 does (it locked nothing before). The
    ask falling moves the stop down; the lock stays at the stop it was booked at (it covers the
    lower one). Filled or cancelled, exactly that lock is released."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    fee_rate = res.venues.pricing("paper").fee_rate
    total0, locked0 = await _usdt(sessions)
    cmd = PlaceOrder(command_id=f"t:trail-{ends}", symbol="BTC/USDT", side="buy", type="trailing_stop",
                     qty=Decimal("0.01"), trail_amount=Decimal(1500))
    placed = await place_order(res, cmd)
    assert placed.status == "succeeded" and placed.data["status"] == "open", placed
    cid = client_order_id_for(f"t:trail-{ends}")
    lock = Decimal("0.01") * Decimal(61510) * (1 + fee_rate)
    assert await _usdt(sessions) == (total0, locked0 + lock)
    async with sessions() as s:
        order = (await s.execute(select(OrderRow).where(OrderRow.client_order_id == cid))).scalar_one()
    assert order.stop_price == Decimal(61510)  # the stop its funds are locked at
    lower = Quote("BTC/USDT", Decimal(59490), Decimal(59500), Decimal(1), Decimal(1), datetime.now(UTC))
    await res.venues["paper"].fill_resting(cid, lower)  # the anchor follows the ask: stop 61000
    assert (await _book_row(SimpleNamespace(res=res), cid)).stop_price == Decimal(61000)
    if ends == "filled":
        through = Quote("BTC/USDT", Decimal(61000), Decimal(61010), Decimal(1), Decimal(1), datetime.now(UTC))
        _, state, _ = await res.venues["paper"].fill_resting(cid, through)
        assert state is not None and state.status == "filled"
        await reconcile_open_orders(res)  # books the fill, as the daemon's sync of the update would
        fill = state.fills[-1]
        assert await _usdt(sessions) == (total0 - fill.qty * fill.price - fill.fee, locked0)
    else:
        cancelled = await cancel_order(res, CancelOrder(command_id="t:trail-cx", order_id=placed.order_id))
        assert cancelled.status == "succeeded", cancelled
        assert await _usdt(sessions) == (total0, locked0)
