"""DCA deals (issue 11 item 4, tool names from seed 001): a bot's deals, one deal in full, deal
statistics and a bot's, and the user's actions on a running deal (cancel, update, panic sell,
add a safety order).

Reads come from the state view (storage/state/deals.py: the figures the deal engine stored on its
last save), with the unrealized profit worked out here at the last quote. The actions are the
deal commands the worker runs inside the deal's own turn (jobs/bots/deal_commands.py), answered
like every write tool: the command's outcome ('pending' → get_command_status), a refusal as a
ToolError saying what to change. A deal the view shows closed is refused here; anything else
(an unknown deal, an amount below the instrument's minimum) is the worker's to refuse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from jobs.commands import (
    OPTIONAL_PRICE_CHECK,
    QUOTE_AMOUNT_CHECK,
    AddSafetyOrder,
    CancelDeal,
    PanicSellDeal,
    UpdateDeal,
    new_command_id,
)
from mcp_bridge.context import (
    READ_ONLY,
    Bridge,
    CommandOutcome,
    OptionalPositiveDecimal,
    PositiveDecimal,
    writes,
)
from mcp_bridge.param_schema import CompactSchema
from mcp_bridge.tools.bots import BotId
from storage.figures import AvgPrice, Fee, Figures, Money, Price
from storage.state.bots import BotReader
from storage.state.deals import DealReader, DealView
from storage.state.views import OrderView, QuoteView
from storage.values import Amount

DealId = Annotated[str, Field(min_length=6, max_length=40, pattern=r"^deal_[A-Za-z0-9]+$",
                              description="from get_bot_deals")]
OptBotId = Annotated[BotId | None, CompactSchema()]
Since = Annotated[datetime | None, Field(description="deals opened since; no offset = UTC"), CompactSchema()]
MONEY, PERCENT = Decimal("1e-8"), Decimal("0.01")  # statistics span pairs: money to the satoshi
PROFIT_STATUSES = ("completed", "stop_loss_finished", "panic_sold")  # closed by selling: won or lost


class DealSummary(Figures):
    deal_id: str
    bot_id: str
    pair: str
    status: str
    average_price: AvgPrice | None
    take_profit_price: Price | None  # the first target still to fill
    safety_orders_used: int
    safety_orders_max: int
    capital_in_use: Money
    fees: Fee
    profit_quote: Money | None  # realized, net of fees
    profit_percent: Amount | None
    unrealized_profit_quote: Money | None = None  # the position at the last quote (open deals)
    opened_at: datetime
    closed_at: datetime | None
    duration_s: int

    def figure_symbol(self) -> str | None:
        return self.pair


class DealsResult(BaseModel):
    deals: list[DealSummary]
    count: int
    note: str | None = None


class DealDetails(Figures):
    deal: DealView
    mark_price: Price | None = None  # the quote side the position would close at
    unrealized_profit_quote: Money | None = None  # before the exit's fee
    unrealized_profit_percent: Amount | None = None
    duration_s: int
    orders: list[OrderView]

    def figure_symbol(self) -> str | None:
        return self.deal.pair


class DealsStats(BaseModel):
    bot_id: str | None
    since: datetime | None
    deals: int
    by_status: dict[str, int]
    won: int
    lost: int
    win_rate_percent: Amount | None  # of deals closed by selling (completed, stop loss, panic sold)
    total_profit_quote: Amount
    average_profit_quote: Amount | None
    average_profit_percent: Amount | None
    average_duration_s: int | None  # closed deals
    average_safety_orders_used: Amount | None  # closed deals
    max_capital_in_use: Amount  # the most one deal had in (its entries' cost)
    note: str | None = None


class BotStats(BaseModel):
    bot_id: str
    name: str
    status: str
    required_capital: str | None  # every deal open and every safety order filled
    capital_in_use: Amount  # the open deals' positions at their average entry
    currency: str | None
    active_deals: int
    closed_deals: int
    total_profit_quote: Amount  # every closed deal's, from Postgres
    stats: DealsStats
    last_deal: DealSummary | None


class DealActionResult(BaseModel):
    command: CommandOutcome
    deal: DealSummary | None = None  # as the view shows it now


def _age(view: DealView, now: datetime) -> int:
    return int(((view.closed_at or now) - view.opened_at).total_seconds())


def _unrealized(view: DealView, quote: QuoteView | None) -> tuple[Decimal, Decimal | None] | None:
    if quote is None or not view.open or not view.position_qty:
        return None
    return view.unrealized(quote.bid, quote.ask)


def _summary(view: DealView, quote: QuoteView | None, now: datetime) -> DealSummary:
    next_target = next((t.price for t in view.take_profit_prices if t.state != "filled"), None)
    unrealized = _unrealized(view, quote)
    return DealSummary(
        deal_id=view.deal_id, bot_id=view.bot_id, pair=view.pair, status=view.status,
        average_price=view.average_price, take_profit_price=next_target,
        safety_orders_used=view.safety_orders_used, safety_orders_max=view.safety_orders_max,
        capital_in_use=view.capital_in_use, fees=view.fees, profit_quote=view.profit_quote,
        profit_percent=view.profit_percent, unrealized_profit_quote=unrealized[0] if unrealized else None,
        opened_at=view.opened_at, closed_at=view.closed_at, duration_s=_age(view, now))


def _round(d: Decimal | None, step: Decimal) -> Decimal | None:
    return None if d is None else d.quantize(step)


def _mean(values: list[Decimal], step: Decimal = MONEY) -> Decimal | None:
    return _round(sum(values, Decimal(0)) / len(values), step) if values else None


def deal_stats(views: list[DealView], bot_id: str | None, since: datetime | None,
               closed_total: int) -> DealsStats:
    """Statistics over the deals the view holds (module docstring of storage/state/deals.py)."""
    by_status: dict[str, int] = {}
    for v in views:
        by_status[v.status] = by_status.get(v.status, 0) + 1
    sold = [v for v in views if v.status in PROFIT_STATUSES and v.profit_quote is not None]
    closed = [v for v in views if not v.open]
    profits = [v.profit_quote for v in sold if v.profit_quote is not None]
    won = sum(1 for p in profits if p > 0)
    avg_duration = _mean([Decimal(_age(v, v.closed_at or v.opened_at)) for v in closed])
    held = len(closed)
    note = None
    if since is None and held < closed_total:
        note = (f"covers the {held} most recent of {closed_total} closed deals (the view keeps a bot's "
                "newest closed deals after a restart)")
    return DealsStats(
        bot_id=bot_id, since=since, deals=len(views), by_status=by_status, won=won, lost=len(profits) - won,
        win_rate_percent=_round(Decimal(won) * 100 / len(profits), PERCENT) if profits else None,
        total_profit_quote=sum(profits, Decimal(0)).quantize(MONEY), average_profit_quote=_mean(profits),
        average_profit_percent=_mean([v.profit_percent for v in sold if v.profit_percent is not None],
                                     PERCENT),
        average_duration_s=None if avg_duration is None else int(avg_duration),
        average_safety_orders_used=_mean([Decimal(v.safety_orders_used) for v in closed], PERCENT),
        max_capital_in_use=max((v.capital_used for v in views), default=Decimal(0)).quantize(MONEY),
        note=note)


def register(mcp: FastMCP, bridge: Bridge) -> None:
    def reader() -> DealReader:
        return DealReader(bridge.redis)

    async def quotes(views: list[DealView]) -> dict[str, QuoteView]:
        pairs = sorted({v.pair for v in views if v.open})
        return await bridge.reader.quotes(pairs) if pairs else {}

    async def selected(bot_id: str | None, since: datetime | None) -> list[DealView]:
        views = await reader().deals(bot_id)
        if since is not None:
            at = since if since.tzinfo else since.replace(tzinfo=UTC)
            views = [v for v in views if v.opened_at >= at]
        return views

    async def known_bot(bot_id: str) -> Any:
        bot = await BotReader(bridge.redis).bot(bot_id)
        if bot is None:
            raise ToolError(f"no bot {bot_id!r}; list_bots shows the ids")
        return bot

    async def act(cmd: Any, what: str) -> DealActionResult:
        shown = await reader().deal(cmd.deal_id)
        if shown is not None and not shown.open:
            raise ToolError(f"{what} refused: deal {cmd.deal_id} is {shown.status}, not open; "
                            f"get_bot_deals(bot_id={shown.bot_id!r}, status='open') lists its open deals")
        result = await bridge.run(cmd)
        view = await reader().deal(cmd.deal_id)
        now = datetime.now(UTC)
        return DealActionResult(command=result, deal=None if view is None else
                                _summary(view, (await quotes([view])).get(view.pair), now))

    @mcp.tool(title="List a bot's deals", annotations=READ_ONLY)
    async def get_bot_deals(
        bot_id: BotId,
        status: Literal["open", "closed", "all"] = "all",
        limit: Annotated[int, Field(ge=1, le=200, description="newest first")] = 20,
    ) -> DealsResult:
        """A bot's deals, newest first: status, average price, take-profit price, safety orders used,
        capital in use, fees and profit (realized; unrealized at the last quote for open deals)."""
        await known_bot(bot_id)
        views = [v for v in await reader().deals(bot_id)
                 if status == "all" or v.open == (status == "open")]
        now, marks = datetime.now(UTC), await quotes(views[:limit])
        listed = [_summary(v, marks.get(v.pair), now) for v in views[:limit]]
        more = len(views) - len(listed)
        return DealsResult(deals=listed, count=len(listed),
                           note=f"{more} older deal(s) not shown: raise limit" if more > 0 else None)

    @mcp.tool(title="Show a deal", annotations=READ_ONLY)
    async def get_deal_details(deal_id: DealId) -> DealDetails:
        """One deal in full: prices (base, average, take profit, stop loss), safety orders used, volumes,
        capital in use, fees, profit (realized, and unrealized at the last quote), its orders and its
        ladder (each step's price, volume and state)."""
        view = await reader().deal(deal_id)
        if view is None:
            raise ToolError(f"no deal {deal_id!r}; get_bot_deals(bot_id) lists a bot's deals")
        quote = (await quotes([view])).get(view.pair)
        unrealized = _unrealized(view, quote)
        orders = [o for o in [await bridge.reader.order(i) for i in view.order_ids] if o is not None]
        mark = None if quote is None or unrealized is None else \
            quote.bid if view.side == "long" else quote.ask
        return DealDetails(
            deal=view, mark_price=mark, unrealized_profit_quote=None if unrealized is None else unrealized[0],
            unrealized_profit_percent=None if unrealized is None else _round(unrealized[1], PERCENT),
            duration_s=_age(view, datetime.now(UTC)), orders=orders)

    @mcp.tool(title="Deal statistics", annotations=READ_ONLY)
    async def get_deals_stats(bot_id: OptBotId = None, since: Since = None) -> DealsStats:
        """Deal statistics of one bot (or all): count by status, win rate, total and average profit in
        quote and %, average duration, safety orders used on average and the most capital a deal had in."""
        if bot_id is not None:
            await known_bot(bot_id)
        totals = await reader().totals([bot_id] if bot_id else None)
        closed_total = sum(t.closed_deals for t in totals.values())
        return deal_stats(await selected(bot_id, since), bot_id, since, closed_total)

    @mcp.tool(title="A bot's statistics", annotations=READ_ONLY)
    async def get_bot_stats(bot_id: BotId) -> BotStats:
        """A bot's deal statistics (as get_deals_stats), capital required vs in use, active deals and its
        last deal."""
        bot = await known_bot(bot_id)
        views = await selected(bot_id, None)
        stats = deal_stats(views, bot_id, None, bot.closed_deals)
        live = [v for v in views if v.open]
        now, marks = datetime.now(UTC), await quotes(views[:1])
        return BotStats(
            bot_id=bot_id, name=bot.name, status=bot.status,
            required_capital=bot.ladder.get("required_capital"),
            capital_in_use=sum((v.capital_in_use for v in live), Decimal(0)).quantize(MONEY),
            currency=bot.ladder.get("currency"),
            active_deals=len(live), closed_deals=bot.closed_deals, total_profit_quote=bot.deals_profit,
            stats=stats, last_deal=_summary(views[0], marks.get(views[0].pair), now) if views else None)

    @mcp.tool(title="Cancel a deal", annotations=writes(destructive=True, idempotent=True))
    async def cancel_deal(deal_id: DealId) -> DealActionResult:
        """Stop managing a deal: its resting orders are cancelled and what it bought stays on the balance
        (panic_sell_deal sells it instead)."""
        return await act(CancelDeal(command_id=new_command_id("deal"), deal_id=deal_id), "cancel_deal")

    @mcp.tool(title="Panic-sell a deal", annotations=writes(destructive=True, idempotent=True))
    async def panic_sell_deal(deal_id: DealId) -> DealActionResult:
        """Close a deal now: its resting orders are cancelled and its position sold (a short: bought
        back) at market."""
        return await act(PanicSellDeal(command_id=new_command_id("deal"), deal_id=deal_id), "panic_sell_deal")

    @mcp.tool(title="Change a deal", annotations=writes(destructive=False, idempotent=True))
    async def update_deal(
        deal_id: DealId,
        take_profit_percent: Annotated[OptionalPositiveDecimal, Field(
            description="new take profit, % from the average price")] = None,
        max_safety_orders: Annotated[int | None, Field(ge=0, le=1000, description="safety orders it may use"),
                                     CompactSchema()] = None,
    ) -> DealActionResult:
        """Change one deal's take profit % and/or how many safety orders it may use (its bot is
        unchanged); the take-profit order moves at once."""
        if take_profit_percent is None and max_safety_orders is None:
            raise ToolError("give take_profit_percent and/or max_safety_orders")
        take_profit = None
        if take_profit_percent is not None:
            shown = await reader().deal(deal_id)
            current = dict(shown.take_profit) if shown is not None else {}
            current.pop("steps", None)  # one target at the new percent
            take_profit = {**current, "percent": str(take_profit_percent)}
        cmd = UpdateDeal(command_id=new_command_id("deal"), deal_id=deal_id, take_profit=take_profit,
                         max_safety_orders=max_safety_orders)
        return await act(cmd, "update_deal")

    @mcp.tool(title="Add a safety order to a deal", annotations=writes(destructive=False, idempotent=False))
    async def add_safety_order(
        deal_id: DealId,
        # the command's own checks (digits, size): a bad value is an argument error, not a crash
        amount: Annotated[PositiveDecimal, QUOTE_AMOUNT_CHECK,
                          Field(description="quote currency to add, e.g. 50 (USDT)")],
        price: Annotated[OptionalPositiveDecimal, OPTIONAL_PRICE_CHECK,
                         Field(description="limit price; omit to buy at market")] = None,
    ) -> DealActionResult:
        """Add funds to an open deal: a manual safety order of `amount` quote currency, at `price` or at
        market; the average and take profit follow its fill."""
        return await act(AddSafetyOrder(command_id=new_command_id("deal"), deal_id=deal_id, volume=amount,
                                        price=price, order_type="market" if price is None else "limit"),
                         "add_safety_order")
