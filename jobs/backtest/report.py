"""A backtest's figures: its deals, profit, drawdown, capital, safety orders and time in deals.

Money is Decimal (profit, fees, capital: the deals' own exact figures). The equity curve is the
exception: it is marked at every candle's close (525,600 marks a year), so it is computed in
float64 with numpy and its drawdown is reported rounded to the cent; the realized total is the
Decimal sum of the deals' own profits.

Definitions:
- profit of a deal: realized, net of every fee (Deal.realized_profit); % of what its entries cost.
- total_profit: the closed deals' profits; open deals at the end are listed with their unrealized
  profit marked at the last close, and counted in the final equity, not in total_profit.
- equity at a candle: the fills' cash so far plus the positions held marked at that candle's
  close (starting at 0: a profit-and-loss curve). max_drawdown: the largest fall of equity from
  its previous peak, in quote currency, and in % of the bot's required capital (the 3Commas
  calculator's per-deal capital times max_active_deals: the money the bot asks to have).
- peak_capital_used: the most quote currency held in positions at once (average entry times what
  the open deals held, after each fill).
- safety orders used: safety-order levels filled in full, per deal and in all.
- time_in_deals_percent: the share of the replayed time with at least one deal open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from jobs.backtest.candles import MINUTE_S, price
from jobs.backtest.driver import BacktestRun, DealRun
from storage.values import plain_decimal

CENT = Decimal("0.01")
QUANTUM = Decimal("0.00000001")  # money figures: the fee quantum (an average entry is an exact ratio)
PCT = Decimal("0.0001")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class DealFigures:
    deal_id: str
    pair: str
    status: str
    opened_at: datetime
    closed_at: datetime | None
    entry_price: Decimal | None  # average entry
    exit_price: Decimal | None  # average exit; None while open
    safety_orders_used: int
    profit: Decimal  # realized (closed) or marked at the last close (open)
    profit_percent: Decimal
    fees: Decimal
    duration_s: int
    open_index: int
    close_index: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"deal_id": self.deal_id, "pair": self.pair, "status": self.status,
                "opened_at": self.opened_at.isoformat(),
                "closed_at": self.closed_at.isoformat() if self.closed_at else None,
                "entry_price": _s(self.entry_price), "exit_price": _s(self.exit_price),
                "safety_orders_used": self.safety_orders_used, "profit": _s(self.profit),
                "profit_percent": _s(self.profit_percent), "fees": _s(self.fees),
                "duration_s": self.duration_s}


@dataclass(frozen=True, slots=True)
class BacktestReport:
    pairs: tuple[str, ...]
    start: datetime
    end: datetime
    candles: int
    fed_candles: int  # the candles the deal engine saw (the rest were skipped as quiet)
    deals: tuple[DealFigures, ...]
    closed_deals: int
    open_deals: int
    wins: int
    losses: int
    total_profit: Decimal
    unrealized_profit: Decimal
    fees: Decimal
    max_drawdown: Decimal
    max_drawdown_percent: Decimal
    required_capital: Decimal
    peak_capital_used: Decimal
    safety_orders_used: int
    max_safety_orders_in_a_deal: int
    time_in_deals_percent: Decimal
    average_deal_s: int
    equity_times: np.ndarray  # epoch s of each candle's close
    equity: np.ndarray  # float64, quote currency (module docstring)

    @property
    def profit_percent_of_capital(self) -> Decimal:
        if not self.required_capital:
            return ZERO
        return (self.total_profit / self.required_capital * 100).quantize(PCT)

    def figures(self) -> dict[str, Any]:
        """The summary a tool or the CLI shows (strings for money, exact)."""
        return {"pairs": list(self.pairs), "start": self.start.isoformat(), "end": self.end.isoformat(),
                "candles": self.candles, "deals": self.closed_deals, "open_deals": self.open_deals,
                "wins": self.wins, "losses": self.losses, "total_profit": _s(self.total_profit),
                "profit_percent_of_capital": _s(self.profit_percent_of_capital),
                "unrealized_profit": _s(self.unrealized_profit), "fees": _s(self.fees),
                "max_drawdown": _s(self.max_drawdown),
                "max_drawdown_percent": _s(self.max_drawdown_percent),
                "required_capital": _s(self.required_capital),
                "peak_capital_used": _s(self.peak_capital_used),
                "safety_orders_used": self.safety_orders_used,
                "max_safety_orders_in_a_deal": self.max_safety_orders_in_a_deal,
                "time_in_deals_percent": _s(self.time_in_deals_percent),
                "average_deal_s": self.average_deal_s}


def _s(d: Decimal | None) -> str | None:
    return None if d is None else plain_decimal(d)


def _deal_figures(run: BacktestRun, dr: DealRun) -> DealFigures:
    d, m = dr.deal, run.markets[dr.deal.pair]
    last = len(m) - 1
    opened = m.close_time(dr.start_index)
    closed = m.close_time(dr.end_index) if dr.end_index is not None else None
    profit, pct = d.realized_profit, d.profit_percent
    if closed is None and d.average_entry is not None:  # marked at the last close
        mark = price(m.close.item(last))
        gross = (mark - d.average_entry) * d.position
        profit = d.realized_profit + (gross if d.long else -gross)
        pct = profit / d.entry_cost * 100 if d.entry_cost else ZERO
    exit_price = d.exit_value / d.exit_qty if d.exit_qty and closed is not None else None
    until = closed or m.close_time(last)
    return DealFigures(
        deal_id=d.id, pair=d.pair, status=d.status.value, opened_at=opened, closed_at=closed,
        entry_price=d.average_entry.quantize(Decimal("1e-8")) if d.average_entry is not None else None,
        exit_price=exit_price.quantize(Decimal("1e-8")) if exit_price is not None else None,
        safety_orders_used=d.completed_safety_orders, profit=profit.quantize(QUANTUM),
        profit_percent=pct.quantize(PCT),
        fees=d.fees, duration_s=int((until - opened).total_seconds()), open_index=dr.start_index,
        close_index=dr.end_index)


def equity_curve(run: BacktestRun) -> np.ndarray:
    """Cash from every fill plus positions marked at each candle's close (float64)."""
    pairs = list(run.config.pairs)
    n = len(run.markets[pairs[0]])
    cash = np.zeros(n)
    held = {p: np.zeros(n) for p in pairs}
    for f in run.fills:
        value, qty = float(f.qty * f.price), float(f.qty)
        sign = 1.0 if f.side == "buy" else -1.0
        cash[f.index] -= sign * value + float(f.fee)
        held[f.pair][f.index] += sign * qty
    equity = np.cumsum(cash)
    for p in pairs:
        equity += np.cumsum(held[p]) * run.markets[p].close
    return equity


def _time_in_deals(deals: list[DealFigures], n: int) -> Decimal:
    covered = np.zeros(n + 1, dtype=np.int64)
    for d in deals:
        covered[d.open_index] += 1
        covered[(d.close_index if d.close_index is not None else n - 1) + 1] -= 1
    busy = int(np.count_nonzero(np.cumsum(covered)[:n]))
    return (Decimal(busy) / Decimal(n) * 100).quantize(CENT) if n else ZERO


def build_report(run: BacktestRun) -> BacktestReport:
    pairs = tuple(run.config.pairs)
    first = run.markets[pairs[0]]
    n = len(first)
    deals = [_deal_figures(run, dr) for dr in run.deals]
    closed = [d for d in deals if d.closed_at is not None]
    still_open = [d for d in deals if d.closed_at is None]
    equity = equity_curve(run)
    drawdown = float(np.max(np.maximum.accumulate(np.maximum(equity, 0.0)) - equity)) if n else 0.0
    per_deal = run.deals[0].deal.ladder.required_capital_per_deal if run.deals else ZERO
    required = per_deal * run.config.max_active_deals
    max_dd = Decimal(repr(drawdown)).quantize(CENT)
    return BacktestReport(
        pairs=pairs, start=first.first_open(), end=first.last_close(), candles=n, fed_candles=run.fed_candles,
        deals=tuple(deals), closed_deals=len(closed), open_deals=len(still_open),
        wins=sum(1 for d in closed if d.profit > 0), losses=sum(1 for d in closed if d.profit <= 0),
        total_profit=sum((d.profit for d in closed), ZERO),
        unrealized_profit=sum((d.profit for d in still_open), ZERO),
        fees=sum((d.fees for d in deals), ZERO), max_drawdown=max_dd,
        max_drawdown_percent=(max_dd / required * 100).quantize(PCT) if required else ZERO,
        required_capital=required, peak_capital_used=run.peak_capital.quantize(CENT),
        safety_orders_used=sum(d.safety_orders_used for d in deals),
        max_safety_orders_in_a_deal=max((d.safety_orders_used for d in deals), default=0),
        time_in_deals_percent=_time_in_deals(deals, n),
        average_deal_s=int(sum(d.duration_s for d in closed) / len(closed)) if closed else 0,
        equity_times=first.open_time + MINUTE_S, equity=equity)
