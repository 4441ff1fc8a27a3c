"""The portfolio summary: what the account is worth in one currency, and how that moved today.

Valuation. Equity is every balance of the paper account valued in the chosen quote currency:
cash as it is, and each asset an instrument trades (BTC, ETH, SPY) at its live quote's bid for
a long (ask for a short): what closing it now would fetch, the same mark get_positions uses.
Locked funds count: they are still the account's. A currency is converted into the chosen
one only through a live quote of a pair that joins them (USDT into BTC through BTC/USDT's ask);
there is no USD/USDT pair, so in USDT the SPY position and the USD cash are shown apart, in
USD, and said to be, never added at an assumed 1:1.

Day's change. Postgres keeps no past prices, so the start-of-day equity cannot be recomputed
from it. The bridge keeps the first complete valuation it makes each UTC day (per quote
currency) in Redis (keys.day_start_equity, three days) and compares with it; the answer says
when that first valuation was made. Like quotes it is live data, not rebuilt: after a flush,
or on a day's first call, the next valuation becomes the start and the change counts from then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

import orjson
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field, PlainSerializer

from jobs.domain.instruments import all_instruments
from jobs.preview import account_venue
from mcp_bridge.context import READ_ONLY, Bridge
from storage.figures import AvgPrice, Balance, Fee, Figures, Money, Price, Qty
from storage.state.views import PositionView, QuoteView
from storage.state.writer import StateWriter

CENTS = Decimal("0.01")
FINE = Decimal("0.00000001")  # a crypto currency (equity in BTC)
MARKED_AT = ("bid for long positions (ask for short): what closing them now would fetch, as in "
             "get_positions")

# A figure in the chosen currency, already rounded to its precision here (cents for USDT and USD,
# 1e-8 for BTC or ETH, which storage.figures' Money, always cents, would not do): shown as it is
InQuote = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")]

QuoteParam = Annotated[str, Field(
    min_length=2, max_length=10, pattern=r"^[A-Za-z]+$",
    description="USDT, USD, BTC or ETH")]


class Holding(Figures):
    """Figures at the instrument's increments and its currency's precision (storage/figures.py)."""

    symbol: str
    currency: str = Field(description="the instrument's quote currency, which its figures are in")
    qty: Qty
    avg_price: AvgPrice
    mark_price: Price | None = Field(description="bid (long) or ask (short); None: no quote yet")
    market_value: Money | None = Field(description="qty × mark_price, in `currency`")
    unrealized_pnl: Money | None
    realized_pnl: Money
    fees: Fee
    in_equity: bool = Field(description="counted in `equity` (its currency converts to the chosen one)")
    stale_quote: bool = False


class Cash(Figures):
    asset: str
    total: Balance
    value: InQuote | None = Field(description="in the chosen currency; None: no rate, shown apart")


class Apart(BaseModel):
    """A currency with no rate into the chosen one: its figures, in itself, not in `equity`."""

    currency: str
    equity: InQuote
    cash: InQuote
    positions_value: InQuote
    unrealized_pnl: InQuote
    realized_pnl: InQuote
    fees: InQuote
    day_change: InQuote | None = None


class PortfolioResult(BaseModel):
    quote: str
    equity: InQuote = Field(description="cash + positions at their mark, all in `quote` (see not_converted)")
    cash: InQuote
    positions_value: InQuote
    unrealized_pnl: InQuote
    realized_pnl: InQuote = Field(description="P&L of closed quantity")
    fees: InQuote = Field(description="fees paid on the positions' fills")
    day_start_equity: InQuote | None
    day_start_at: datetime | None = Field(description="when the day's first valuation was made (UTC)")
    day_change: InQuote | None
    day_change_pct: InQuote | None
    marked_at: str = MARKED_AT
    positions: list[Holding]
    cash_balances: list[Cash]
    not_converted: list[Apart] = Field(
        description="currencies with no rate into `quote` (no pair joins them): shown apart, not in equity")
    notes: list[str]


class _Sums:
    """The figures of one currency, as they add up."""

    def __init__(self) -> None:
        self.cash = self.positions = self.unrealized = self.realized = self.fees = Decimal(0)

    @property
    def equity(self) -> Decimal:
        return self.cash + self.positions


def _places(currency: str) -> Decimal:
    return CENTS if currency in {i.quote for i in all_instruments()} else FINE


def _round(d: Decimal, currency: str) -> Decimal:
    q = d.quantize(_places(currency), rounding=ROUND_HALF_EVEN)
    return abs(q) if q.is_zero() else q  # never "-0.00"


def quote_currencies() -> list[str]:
    """Currencies a valuation can be made in: every quote currency, and the crypto bases."""
    return sorted({i.quote for i in all_instruments()}
                  | {i.base for i in all_instruments() if i.asset_class == "crypto"})


def _rate(currency: str, into: str, quotes: dict[str, QuoteView]) -> Decimal | None:
    """How much of `into` one unit of `currency` fetches now, through a pair joining them."""
    if currency == into:
        return Decimal(1)
    for inst in all_instruments():
        q = quotes.get(inst.symbol)
        if q is None:
            continue
        if (inst.base, inst.quote) == (currency, into):
            return q.bid  # sell `currency` for `into`
        if (inst.base, inst.quote) == (into, currency) and q.ask > 0:
            return 1 / q.ask  # buy `into` with `currency`
    return None


def _mark(qty: Decimal, q: QuoteView | None) -> Decimal | None:
    return None if q is None or qty == 0 else (q.bid if qty > 0 else q.ask)


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="Portfolio summary", annotations={**READ_ONLY, "title": "Portfolio summary"})
    async def get_portfolio(quote: QuoteParam = "USDT") -> PortfolioResult:
        """What the paper account is worth in one currency: equity (cash + positions at the bid),
        P&L, fees and the day's change; holdings with no rate into `quote` (e.g. SPY in USDT) are
        listed apart under not_converted."""
        into = quote.upper()
        if into not in quote_currencies():
            raise ToolError(f"cannot value in {quote[:10]!r}; use one of: {', '.join(quote_currencies())}")
        positions, balances = await bridge.reader.portfolio()
        instruments = {i.symbol: i for i in all_instruments()}
        by_base = {i.base: i for i in all_instruments()}
        quotes = await bridge.reader.quotes(list(instruments))
        now = datetime.now(UTC)
        notes: list[str] = []
        sums: dict[str, _Sums] = {}
        venue = account_venue()
        held = {p.symbol: p for p in positions if p.venue == venue}
        holdings: list[Holding] = []
        complete = True

        cash_lines = []
        for b in balances:
            if b.venue != venue or (b.asset in by_base and by_base[b.asset].symbol in held) or b.total == 0:
                continue  # a traded asset is valued as a position below
            inst = by_base.get(b.asset)
            if inst is None:
                sums.setdefault(b.asset, _Sums()).cash += b.total
                rate = _rate(b.asset, into, quotes)
                cash_lines.append(Cash(asset=b.asset, total=b.total,
                                       value=None if rate is None else _round(b.total * rate, into)))
            else:  # an asset held without a position record (e.g. a starting balance)
                held[inst.symbol] = PositionView.model_construct(
                    venue=venue, symbol=inst.symbol, qty=b.total, avg_price=Decimal(0),
                    realized_pnl=Decimal(0), fees=Decimal(0), updated_at=now)
                notes.append(f"{b.asset}: held without a position record, so no average price or P&L")

        for symbol, p in sorted(held.items()):
            inst = instruments.get(symbol)
            if inst is None:
                notes.append(f"{symbol}: not a known instrument; left out")
                continue
            q = quotes.get(symbol)
            mark = _mark(p.qty, q)
            value = None if mark is None else p.qty * mark
            unrealized = None if mark is None else (mark - p.avg_price) * p.qty
            fees = p.fees
            s = sums.setdefault(inst.quote, _Sums())
            s.realized += p.realized_pnl
            s.fees += fees
            if inst.base == into:  # BTC valued in BTC is its qty, not its price and back (a spread lost)
                sums.setdefault(into, _Sums()).positions += p.qty
            elif p.qty != 0 and mark is None:
                complete = False
                notes.append(f"{symbol}: no quote yet, so its value is left out of equity")
            else:
                s.positions += value or Decimal(0)
            s.unrealized += unrealized or Decimal(0)
            stale = q is not None and bridge.quote_is_stale(q, now)
            if q is not None and stale and p.qty != 0:
                notes.append(f"{symbol}: its quote is stale ({q.age_s(now):.0f} s old); valued at it anyway")
            holdings.append(Holding(
                symbol=symbol, currency=inst.quote, qty=p.qty, avg_price=p.avg_price, mark_price=mark,
                market_value=value, unrealized_pnl=unrealized, realized_pnl=p.realized_pnl, fees=fees,
                in_equity=_rate(inst.quote, into, quotes) is not None, stale_quote=stale))

        total = _Sums()
        apart: dict[str, _Sums] = {}
        for currency, s in sorted(sums.items()):
            rate = _rate(currency, into, quotes)
            if rate is None:
                apart[currency] = s
                continue
            total.cash += s.cash * rate
            total.positions += s.positions * rate
            total.unrealized += s.unrealized * rate
            total.realized += s.realized * rate
            total.fees += s.fees * rate
        if apart:
            notes.append(f"no rate from {', '.join(apart)} into {into} (no pair joins them): "
                         f"shown apart under not_converted, not in equity")

        equities = {into: total.equity, **{c: s.equity for c, s in apart.items()}}
        start = await _day_start(bridge, into, equities, now, keep=complete)
        start_at = datetime.fromisoformat(start["at"]) if start else None
        start_equity = {c: Decimal(v) for c, v in start["equity"].items()} if start else {}
        day_change = None
        pct = None
        if not complete:  # a partial equity against a whole one is no change
            start_equity = {}
            notes.append("no day's change while a held position has no quote (its value is unknown)")
        if into in start_equity:
            day_change = _round(total.equity - start_equity[into], into)
            if start_equity[into]:
                pct = (day_change / start_equity[into] * 100).quantize(CENTS)
        if start is not None and start["at"] == now.isoformat():
            notes.append("this is the first valuation of the UTC day (or since Redis lost the day's "
                         "first): the day's change counts from now")
        return PortfolioResult(
            quote=into, equity=_round(total.equity, into), cash=_round(total.cash, into),
            positions_value=_round(total.positions, into), unrealized_pnl=_round(total.unrealized, into),
            realized_pnl=_round(total.realized, into), fees=_round(total.fees, into),
            day_start_equity=None if start is None else _round(Decimal(start["equity"][into]), into),
            day_start_at=start_at, day_change=day_change, day_change_pct=pct,
            positions=holdings, cash_balances=cash_lines,
            not_converted=[Apart(
                currency=c, equity=_round(s.equity, c), cash=_round(s.cash, c),
                positions_value=_round(s.positions, c), unrealized_pnl=_round(s.unrealized, c),
                realized_pnl=_round(s.realized, c), fees=_round(s.fees, c),
                day_change=_round(s.equity - start_equity[c], c) if c in start_equity else None)
                for c, s in apart.items()],
            notes=notes)


async def _day_start(bridge: Bridge, into: str, equities: dict[str, Decimal], now: datetime, *,
                     keep: bool) -> dict[str, Any] | None:
    """The day's first valuation in `into`; this one becomes it if there is none yet and it is
    complete (`keep`). None: none kept and this one is incomplete."""
    day = now.date().isoformat()
    if keep:
        mine = orjson.dumps({"at": now.isoformat(), "equity": {c: str(v) for c, v in equities.items()}})
        raw: bytes | None = await StateWriter(bridge.redis).keep_first_equity(day, into, mine)
    else:
        raw = await bridge.reader.day_start_equity(day, into)
    return orjson.loads(raw) if raw else None
