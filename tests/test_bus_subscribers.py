"""The event bus in use (issue 10 item 2): effects publish typed events after commit, and the daemon's
subscribers (paper matching, the state view) react to them, recover after a FLUSHDB and resume
after a restart without applying an event twice. Real daemon, worker, Postgres and Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select

from jobs import effects
from jobs.commands import PlaceOrder
from jobs.orders import place_order
from storage.events import EventPublisher, QuoteEvent, TradingStateChanged
from storage.events import keys as bus_keys
from storage.events.codec import decode
from storage.models import FillRow
from storage.state.reader import StateReader
from tests.helpers import put_quote
from tests.stack import command_queue, eventually, running_daemon, running_worker

MATCHING = "venue-paper"  # the paper host's consumer group (daemon/app.py)


def _host(d):
    return d.res.venues.background["paper"]


def _crossing(limit: Decimal, at: datetime | None = None) -> QuoteEvent:
    """A quote whose ask is below a buy limit: it fills the resting order."""
    return QuoteEvent(venue="paper", symbol="BTC/USDT", bid=limit - 2, ask=limit - 1, bid_size=Decimal(1),
                      ask_size=Decimal(1), ts=at or datetime.now(UTC))


async def _rest_a_buy(queue, reader: StateReader, command_id: str) -> tuple[str, str, Decimal]:
    """A buy limit far below the market (no simulator quote reaches it): (order id, client order id,
    limit)."""
    q = await eventually(lambda: reader.quote("BTC/USDT"))
    limit = (q.bid * Decimal("0.8")).quantize(Decimal("0.01"))
    done = await queue.submit(PlaceOrder(command_id=command_id, symbol="BTC/USDT", side="buy", type="limit",
                                         qty=Decimal("0.01"), limit_price=limit), 10)
    assert done is not None and done.command.status == "succeeded", done
    assert done.order is not None and done.order.status == "open"
    return done.order.order_id, done.order.client_order_id, limit


async def _status_is(reader: StateReader, order_id: str, status: str):
    o = await reader.order(order_id)
    return o if o is not None and o.status == status else None


async def _resting(d, client_order_id: str) -> bool:
    return any(o.client_order_id == client_order_id for o in _host(d).book.get("BTC/USDT", ()))


async def _fills(sessions, order_id: str) -> int:
    async with sessions() as s:
        return int(await s.scalar(
            select(func.count()).select_from(FillRow).where(FillRow.order_id == order_id)))


async def test_an_effect_publishes_its_order_and_fill_events_after_commit(res, redis, monkeypatch):
    # the hold is long here so that the outcome always carries it: a loaded machine can take longer
    # than the real 50 ms between the two effects, and the held publish then goes out on its own
    monkeypatch.setattr(effects, "HOLD_S", 5.0)
    await put_quote(redis, "BTC/USDT", "60000", "60010")
    result = await place_order(res, PlaceOrder(command_id="bus:mkt", symbol="BTC/USDT", side="buy",
                                               type="market", qty=Decimal("0.01")))
    assert result.status == "succeeded", result.message
    orders = [decode(f) for _, f in await redis.xrange(bus_keys.stream("order"))]
    fills = [decode(f) for _, f in await redis.xrange(bus_keys.stream("fill"))]
    # the "submitting" publish was held and carried by the outcome's: one event, the newer state
    assert [o.status for o in orders] == ["filled"]
    filled = orders[-1]
    assert (filled.venue, filled.symbol, filled.filled_qty, filled.quantity) == (
        "paper", "BTC/USDT", Decimal("0.01"), Decimal("0.01"))
    (fill,) = fills
    assert (fill.order_id, fill.client_order_id, fill.quantity) == (filled.order_id, filled.client_order_id,
                                                                    Decimal("0.01"))
    assert fill.price == filled.avg_fill_price and fill.fee > 0
    assert (await StateReader(redis).order(filled.order_id)).status == "filled"  # the view, same round trip


async def test_the_paper_host_fills_a_resting_order_from_a_quote_event_without_reading_its_book(
        settings, redis, sessions):
    async with running_daemon(settings) as d, running_worker(settings), command_queue(settings) as queue:
        reader = StateReader(redis)
        order_id, cid, limit = await _rest_a_buy(queue, reader, "bus:rest")
        await eventually(lambda: _resting(d, cid))  # learnt from its OrderUpdated event, not by polling
        reads = _host(d).book_reads
        matching = d.subscriptions.by_group(MATCHING)
        handled = matching.stats.handled
        await eventually(lambda: _more(matching, handled + 50))  # the simulator's quotes flow meanwhile
        await EventPublisher(redis).publish([_crossing(limit)])
        filled = await eventually(lambda: _status_is(reader, order_id, "filled"))
        assert filled.avg_fill_price == limit and await _fills(sessions, order_id) == 1
        # the book was read whole once, at start: not per quote, not on the order event
        assert _host(d).book_reads == reads == 1


async def _more(subscriber, n: int) -> bool:
    return subscriber.stats.handled >= n


async def test_after_a_flushdb_the_subscribers_recover_and_a_resting_order_still_fills(settings, redis,
                                                                                        sessions):
    async with running_daemon(settings) as d, running_worker(settings), command_queue(settings) as queue:
        reader = StateReader(redis)
        await eventually(lambda: reader.quote("BTC/USDT"))
        reads, rebuilds = _host(d).book_reads, d.guard.rebuilds
        await redis.flushdb()  # streams, groups and the view gone; the view guard rebuilds the view
        matching = d.subscriptions.by_group(MATCHING)
        await eventually(lambda: _gap_seen(matching), timeout=15)
        await eventually(lambda: _rebuilt(d, rebuilds), timeout=15)
        assert _host(d).book_reads > reads  # the gap made it resync its book from Postgres
        order_id, cid, limit = await _rest_a_buy(queue, reader, "bus:after-flush")
        await eventually(lambda: _resting(d, cid))  # the recreated group gets the order event
        await EventPublisher(redis).publish([_crossing(limit)])
        await eventually(lambda: _status_is(reader, order_id, "filled"))
        assert await _fills(sessions, order_id) == 1
        # the state view's group came back too: a trading state event reaches the view
        await EventPublisher(redis).publish([TradingStateChanged(
            state="HALTED", reason="bus test", actor="test", changed_at=datetime.now(UTC))])
        halted = await eventually(lambda: _trading(reader, "HALTED"))
        assert halted.reason == "bus test"


async def _rebuilt(d, before: int) -> bool:
    return d.guard.rebuilds > before and d.guard.state == "ready"


async def _gap_seen(subscriber) -> bool:
    return any(g.reason == "vanished" for g in subscriber.stats.gaps)


async def _trading(reader: StateReader, state: str):
    ts = await reader.trading_state()
    return ts if ts.state == state else None


async def test_a_restarted_daemon_resumes_its_group_and_applies_no_event_twice(settings, redis, sessions):
    """A crossing quote delivered to the daemon's consumer and never acknowledged (the daemon was
    killed while matching it), then published a second time: the restarted daemon handles its own
    pending entry first (the fill), skips the repeat, and Postgres holds one fill."""
    async with running_worker(settings), command_queue(settings) as queue:
        async with running_daemon(settings) as d:
            order_id, cid, limit = await _rest_a_buy(queue, StateReader(redis), "bus:restart")
            await eventually(lambda: _resting(d, cid))
        crossing = _crossing(limit)
        stream = bus_keys.stream("quote")
        await EventPublisher(redis).publish([crossing])
        # the killed daemon had been given it: pending for its consumer, never acknowledged
        (got,) = await redis.xreadgroup(MATCHING, "daemon", {stream: ">"})
        assert [decode(f) for _, f in got[1]][-1] == crossing
        await EventPublisher(redis).publish([crossing])  # and a repeat (same event id)
        async with running_daemon(settings) as d:
            reader = StateReader(redis)
            await eventually(lambda: _status_is(reader, order_id, "filled"))
            matching = d.subscriptions.by_group(MATCHING)
            await eventually(lambda: _duplicates(matching))
            assert not matching.stats.gaps  # the group was still there: resumed, not recreated
        assert await _fills(sessions, order_id) == 1
        assert (await redis.xpending(stream, MATCHING))["pending"] == 0


async def _duplicates(subscriber) -> bool:
    return subscriber.stats.duplicates >= 1
