# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients),
# so every `await redis.x(...)` reads to mypy as awaiting a non-awaitable:
# mypy: disable-error-code="misc"
"""Reads from the Redis state view: what the MCP bridge answers read-only tools from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from storage.state import keys
from storage.state.fills import FillView
from storage.state.views import (
    BalanceView,
    CommandView,
    OrderView,
    PositionView,
    QuoteView,
    ScheduleView,
    TradingStateView,
)
from storage.values import FINAL_ORDER_STATUSES, OPEN_ORDER_STATUSES

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Position = tuple[float, str]  # (index score, member): where a page of a time index ends
SCAN_BUDGET = 2000  # records one page may look at before it answers with what it found and a cursor


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a history list, newest first. `next` is where the next page starts (None: no
    more in the view); `floor` is set when the view holds only what is newer than it (epoch s:
    the rebuild keeps the newest N), so older history exists only in Postgres."""

    items: list[T]
    next: Position | None
    floor: float | None = None



@dataclass(frozen=True)
class OrderInputs:
    """The view as a preview reads it (StateReader.order_inputs)."""

    quote: QuoteView
    balances: list[BalanceView]
    trading: TradingStateView


_TRADING_STATE_MISSING = ("the trading state is missing from the state view; it is being rebuilt "
                          "from Postgres, retry in a few seconds")


class ViewRebuilding(Exception):
    """The state view is missing or being rebuilt from Postgres: answer "retry shortly", not from
    an empty view."""

    def __init__(self, message: str = "the state view is being rebuilt from Postgres (Redis was flushed or "
                                      "restarted); retry in a few seconds") -> None:
        super().__init__(message)


async def ready_and(redis: Redis, stage: Callable[[Pipeline], object]) -> list[Any]:
    """The replies of the commands `stage` adds to a pipeline, in order, read atomically with the
    readiness check (MULTI/EXEC): ViewRebuilding rather than an answer from an empty or
    half-written view. Every reader of the view derived from Postgres goes through here."""
    async with redis.pipeline(transaction=True) as p:
        p.exists(keys.STATE_READY)
        stage(p)
        ready, *got = await p.execute()
    if not ready:
        raise ViewRebuilding()
    return got


class StateReader:
    """Reads of the state view. Everything derived from Postgres (orders, portfolio, schedules,
    commands, trading state, audit) is read in the same round trip as keys.STATE_READY and raises
    ViewRebuilding without it: an empty view after a FLUSHDB would otherwise read as "no orders,
    no balances, trading ACTIVE". Quotes are live data, not rebuilt, and are read as they are.

    The readiness check rides along (MGET, or MULTI/EXEC for the other reads) rather than being
    cached, so a flush is seen by the very next read, at no extra round trip.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def _get(self, key: str) -> bytes | None:
        """One key of the view, if the view is ready."""
        ready, raw = await self.redis.mget([keys.STATE_READY, key])
        if ready is None:
            raise ViewRebuilding()
        return raw

    async def _ready_and(self, stage: Callable[[Pipeline], object]) -> Any:
        """The reply of the one command `stage` adds (`ready_and`)."""
        (got,) = await ready_and(self.redis, stage)
        return got

    async def is_ready(self) -> bool:
        return bool(await self.redis.exists(keys.STATE_READY))

    async def quote(self, symbol: str) -> QuoteView | None:
        raw = await self.redis.get(keys.quote(symbol))
        return QuoteView.model_validate_json(raw) if raw else None

    async def order(self, order_id: str) -> OrderView | None:
        raw = await self._get(keys.order(order_id))
        return OrderView.model_validate_json(raw) if raw else None

    async def order_id_for_client_id(self, client_order_id: str) -> str | None:
        raw = await self._ready_and(lambda p: p.hget(keys.ORDERS_BY_CLIENT_ID, client_order_id))
        return raw.decode() if raw else None

    async def orders(self, *, open_only: bool = False, limit: int = 50) -> list[OrderView]:
        if open_only:
            ids = [i.decode() for i in await self._ready_and(lambda p: p.smembers(keys.ORDERS_OPEN))]
        else:
            ids = [i.decode() for i in await self._ready_and(
                lambda p: p.zrevrange(keys.ORDERS_BY_TIME, 0, limit - 1))]
        if not ids:
            return []
        ready, *raws = await self.redis.mget([keys.STATE_READY, *(keys.order(i) for i in ids)])
        if ready is None:  # flushed between the two reads: a partial list would look complete
            raise ViewRebuilding()
        found = [OrderView.model_validate_json(r) for r in raws if r]
        found.sort(key=lambda o: o.created_at, reverse=True)
        return found[:limit]

    async def order_page(self, *, symbol: str | None = None, status: str = "all",
                         schedule_id: str | None = None, since: float | None = None,
                         until: float | None = None, after: Position | None = None,
                         limit: int = 50) -> Page[OrderView]:
        """Orders created in [since, until), newest first, after the position `after` (a previous
        page's `next`), matching every filter given. status: open, all, or a final status."""

        def keep(o: OrderView) -> bool:
            return ((symbol is None or o.symbol == symbol)
                    and (schedule_id is None or o.schedule_id == schedule_id)
                    and (status == "all" or (o.status in OPEN_ORDER_STATUSES if status == "open"
                                             else o.status == status)))

        if status == "open":  # a set of the few orders still working: filtered and sorted here
            return await self._open_page(keep, since, until, after, limit)
        indexes = []
        if symbol is not None:
            indexes.append(keys.orders_by_symbol(symbol))
        if schedule_id is not None:
            indexes.append(keys.orders_by_schedule(schedule_id))
        if status in FINAL_ORDER_STATUSES:
            indexes.append(keys.orders_by_final_status(status))
        indexes.append(keys.ORDERS_BY_TIME)  # last: of equal sizes, a filter's own index is exact
        return await self._page(indexes, keys.order, OrderView, keep, keys.ORDERS_FLOOR,
                                since, until, after, limit)

    async def fill_page(self, *, symbol: str | None = None, order_id: str | None = None,
                        since: float | None = None, until: float | None = None,
                        after: Position | None = None, limit: int = 50) -> Page[FillView]:
        """Fills executed in [since, until), newest first, as order_page."""

        def keep(f: FillView) -> bool:
            return (symbol is None or f.symbol == symbol) and (order_id is None or f.order_id == order_id)

        indexes = []
        if symbol is not None:
            indexes.append(keys.fills_by_symbol(symbol))
        if order_id is not None:
            indexes.append(keys.fills_by_order(order_id))
        indexes.append(keys.FILLS_BY_TIME)
        return await self._page(indexes, keys.fill, FillView, keep, keys.FILLS_FLOOR,
                                since, until, after, limit)

    async def _page(self, indexes: list[str], record_key: Callable[[str], str], model: type[M],
                    keep: Callable[[M], bool], floor_key: str, since: float | None, until: float | None,
                    after: Position | None, limit: int) -> Page[M]:
        """Walk the smallest of `indexes` (each a zset id -> epoch that holds every match) from
        newest to oldest in chunks, keeping the records `keep` accepts, until the page is full,
        the index ends or SCAN_BUDGET records were looked at (the page then ends early with a
        cursor). Round trips: one for the sizes and the floor, then two per chunk (one chunk when
        a single filter, or none, is given: its index holds exactly the matches)."""
        low = "-inf" if since is None else repr(since)
        high = "+inf" if until is None else f"({until!r}"
        if after is not None and (until is None or after[0] < until):
            high = repr(after[0])
        *sizes, floor_raw = await ready_and(self.redis, lambda p: [p.zcount(i, low, high) for i in indexes]
                                            + [p.get(floor_key)])
        index = indexes[min(range(len(indexes)), key=lambda n: sizes[n])]
        floor = float(floor_raw) if floor_raw is not None else None
        found: list[tuple[Position, M]] = []
        scanned = 0
        # a page's worth first (enough when the walked index holds exactly the matches), then twice
        # as many each round while another filter turns records away
        chunk = min(limit + 1, SCAN_BUDGET)
        at = after
        while True:
            top = high if at is None or (until is not None and at[0] >= until) else repr(at[0])
            rows = await self._ready_and(lambda p, top=top, n=chunk: p.zrevrangebyscore(
                index, top, low, start=0, num=n, withscores=True))
            # members of equal score come in reverse order: those not below `at` were seen already
            fresh = [(float(sc), m.decode()) for m, sc in rows]
            fresh = [e for e in fresh if at is None or e[0] < at[0] or e[1] < at[1]]
            if fresh:
                ready, *raws = await self.redis.mget([keys.STATE_READY, *(record_key(m) for _, m in fresh)])
                if ready is None:  # flushed between the reads: a partial page would look complete
                    raise ViewRebuilding()
                for pos, raw in zip(fresh, raws, strict=True):
                    if raw is not None and keep(record := model.model_validate_json(raw)):
                        found.append((pos, record))
                scanned += len(fresh)
                at = fresh[-1]
            if len(found) > limit:
                return Page([r for _, r in found[:limit]], found[limit - 1][0], floor)
            if len(rows) < chunk or not fresh:  # the index ends (or a chunk of one instant: stop)
                return Page([r for _, r in found], None, floor)
            if scanned >= SCAN_BUDGET:
                return Page([r for _, r in found], at, floor)
            chunk = min(chunk * 2, 1000, SCAN_BUDGET)

    async def _open_page(self, keep: Callable[[OrderView], bool], since: float | None, until: float | None,
                         after: Position | None, limit: int) -> Page[OrderView]:
        ids = [i.decode() for i in await self._ready_and(lambda p: p.smembers(keys.ORDERS_OPEN))]
        ready, *raws = await self.redis.mget([keys.STATE_READY, *(keys.order(i) for i in ids)])
        if ready is None:
            raise ViewRebuilding()
        rows = sorted((((o.created_at.timestamp(), o.order_id), o) for r in raws if r
                       if keep(o := OrderView.model_validate_json(r))), key=lambda e: e[0], reverse=True)
        rows = [(pos, o) for pos, o in rows if (since is None or pos[0] >= since)
                and (until is None or pos[0] < until) and (after is None or pos < after)]
        if len(rows) > limit:
            return Page([o for _, o in rows[:limit]], rows[limit - 1][0])
        return Page([o for _, o in rows], None)

    async def portfolio(self) -> tuple[list[PositionView], list[BalanceView]]:
        """Positions and balances as of one instant (one MULTI/EXEC): a valuation mixing a position
        from before a fill with a balance from after it would count the fill once or twice."""
        pos_raws, bal_raws = await ready_and(
            self.redis, lambda p: [p.hvals(keys.POSITIONS), p.hvals(keys.BALANCES)])
        return (sorted((PositionView.model_validate_json(r) for r in pos_raws), key=lambda p: p.symbol),
                sorted((BalanceView.model_validate_json(r) for r in bal_raws), key=lambda b: b.asset))

    async def quotes(self, symbols: list[str]) -> dict[str, QuoteView]:
        """The live quotes of `symbols` that have one, in one round trip."""
        if not symbols:
            return {}
        raws = await self.redis.mget([keys.quote(s) for s in symbols])
        return {s: QuoteView.model_validate_json(r) for s, r in zip(symbols, raws, strict=True) if r}

    async def day_start_equity(self, day: str, quote: str) -> bytes | None:
        """The first valuation get_portfolio kept on `day` (UTC date) in `quote`, as stored (JSON).
        Live data like quotes, not rebuilt from Postgres: read without the readiness check."""
        raw = await self.redis.hget(keys.day_start_equity(day), quote)
        return bytes(raw) if raw is not None else None

    async def positions(self) -> list[PositionView]:
        raws = await self._ready_and(lambda p: p.hvals(keys.POSITIONS))
        return sorted((PositionView.model_validate_json(r) for r in raws), key=lambda p: p.symbol)

    async def balances(self) -> list[BalanceView]:
        raws = await self._ready_and(lambda p: p.hvals(keys.BALANCES))
        return sorted((BalanceView.model_validate_json(r) for r in raws), key=lambda b: b.asset)

    async def schedules(self) -> list[ScheduleView]:
        raws = await self._ready_and(lambda p: p.hvals(keys.SCHEDULES))
        return sorted((ScheduleView.model_validate_json(r) for r in raws), key=lambda s: s.created_at)

    async def schedule(self, schedule_id: str) -> ScheduleView | None:
        raw = await self._ready_and(lambda p: p.hget(keys.SCHEDULES, schedule_id))
        return ScheduleView.model_validate_json(raw) if raw else None

    async def command(self, command_id: str) -> CommandView | None:
        raw = await self._get(keys.command(command_id))
        return CommandView.model_validate_json(raw) if raw else None

    async def audit_recent(self, limit: int = 50) -> list[dict[str, Any]]:
        raws = await self._ready_and(lambda p: p.lrange(keys.AUDIT_RECENT, 0, limit - 1))
        return [orjson.loads(r) for r in raws]

    async def order_inputs(self, symbol: str) -> OrderInputs | None:
        """What a preview values and risk-checks an order from, in one round trip (MULTI/EXEC)
        instead of three: the symbol's quote, the balances and the trading state, as of one instant.

        Why one: a preview is the busiest tool under load (one per order), and each round trip
        costs the bridge a socket write, a wake-up and a parse (mcp_load's profile). None when
        there is no quote (nothing to value the order from), whatever the rest of the view holds,
        as the reads did one by one; ViewRebuilding when the view is not ready or lacks the
        trading state (see trading_state)."""
        async with self.redis.pipeline(transaction=True) as p:
            p.exists(keys.STATE_READY)
            p.get(keys.quote(symbol))
            p.hvals(keys.BALANCES)
            p.get(keys.TRADING_STATE)
            ready, quote_raw, balance_raws, trading_raw = await p.execute()
        if not quote_raw:
            return None
        if not ready:
            raise ViewRebuilding()
        if trading_raw is None:
            raise ViewRebuilding(_TRADING_STATE_MISSING)
        balances = sorted((BalanceView.model_validate_json(r) for r in balance_raws), key=lambda b: b.asset)
        return OrderInputs(QuoteView.model_validate_json(quote_raw), balances,
                           TradingStateView.model_validate_json(trading_raw))

    async def trading_state(self) -> TradingStateView:
        """ACTIVE only if the view says so: a ready view always holds the key (the rebuild writes
        it), so a missing one is treated as a view not ready, never as a default."""
        raw = await self._get(keys.TRADING_STATE)
        if raw is None:
            raise ViewRebuilding(_TRADING_STATE_MISSING)
        return TradingStateView.model_validate_json(raw)

    async def heartbeats(self, components: list[str]) -> dict[str, dict[str, Any] | None]:
        raws = await self.redis.mget([keys.heartbeat(c) for c in components])
        return {c: (orjson.loads(r) if r else None) for c, r in zip(components, raws, strict=True)}
