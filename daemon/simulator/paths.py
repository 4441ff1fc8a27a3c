"""Price paths for the simulator: a seeded random walk with realistic texture, or a CSV replay.

Why this shape: strategies and risk checks need prices that behave like markets (quiet and busy
spells, the odd gap, a spread that breathes) yet repeat exactly under a seed, so a failing test or
a backtest can be rerun tick for tick. Floats are confined to the random-walk arithmetic; every
value leaving this module is a `Decimal` already rounded to the instrument's tick and lot.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol, runtime_checkable

from jobs.domain.instruments import Instrument, get_instrument

SAMPLE_TICKS_CSV: Path = Path(__file__).parent / "data" / "sample_ticks.csv"


@dataclass(frozen=True, slots=True)
class SimTick:
    """One simulated step for one symbol: top of book plus the trade printed on this step."""

    symbol: str  # canonical, e.g. "BTC/USDT"
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    last: Decimal
    last_qty: Decimal
    ts: datetime | None = None  # source time for replays; None for generated paths

    @property
    def buyer_is_maker(self) -> bool:
        """A print at the bid was a seller hitting a resting buy (Binance's `m` flag)."""
        return self.last <= self.bid


@runtime_checkable
class PricePath(Protocol):
    """Anything the simulator can step: one call, one tick, for one symbol."""

    symbol: str

    def next_tick(self) -> SimTick: ...


class PathExhaustedError(Exception):
    """A non-looping replay ran out of rows."""


def derive_seed(seed: int, symbol: str) -> int:
    """Stable per-symbol seed (Python's `hash()` of str is salted per process, so not that)."""
    digest = hashlib.sha256(f"{seed}/{symbol}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True, slots=True)
class WalkParams:
    """Per-step parameters of the random walk (a step is one simulator tick, ~100 ms)."""

    start_price: float
    step_vol: float  # long-run std dev of the per-step log return
    garch_alpha: float = 0.08  # weight of the last squared shock
    garch_beta: float = 0.90  # persistence of variance; alpha + beta < 1 keeps it stationary
    jump_rate: float = 1e-4  # Poisson intensity per step: a gap every ~17 min at 100 ms ticks
    jump_sd: float = 0.0  # std dev of a jump's log size; 0 means 15 x step_vol
    spread_mean_ticks: float = 2.0
    spread_kappa: float = 0.2  # mean-reversion speed of the spread, per step
    spread_sd_ticks: float = 0.6
    book_size: float = 1.0  # median size resting at the touch
    trade_size: float = 0.1  # median trade size
    size_sigma: float = 0.8  # lognormal dispersion of sizes


DEFAULT_PARAMS: dict[str, WalkParams] = {
    "BTC/USDT": WalkParams(65000.0, 5e-5, book_size=0.8, trade_size=0.02),
    "ETH/USDT": WalkParams(3200.0, 7e-5, book_size=12.0, trade_size=0.3),
    "SPY": WalkParams(580.0, 2.5e-5, spread_mean_ticks=1.3, spread_sd_ticks=0.4,
                      jump_rate=5e-5, book_size=400.0, trade_size=50.0),
}


def _dec(x: float) -> Decimal:
    """The one float -> Decimal boundary: via the shortest repr, never the binary expansion."""
    return Decimal(repr(x))


class _Sizer:
    """Seeded lognormal sizes, rounded down to the lot but never below the minimum quantity."""

    def __init__(self, inst: Instrument, rng: random.Random, sigma: float) -> None:
        self._inst = inst
        self._rng = rng
        self._sigma = sigma

    def draw(self, median: float) -> Decimal:
        q = self._inst.round_qty(_dec(median * math.exp(self._sigma * self._rng.gauss(0.0, 1.0))))
        return max(q, self._inst.min_qty)


class RandomWalkPath:
    """Log random walk with GARCH(1,1) variance, Poisson jumps and an OU spread in ticks."""

    def __init__(self, symbol: str, seed: int = 42, params: WalkParams | None = None) -> None:
        self.instrument = get_instrument(symbol)
        self.symbol = self.instrument.symbol
        if params is None:
            if self.symbol not in DEFAULT_PARAMS:
                raise ValueError(f"no default walk parameters for {self.symbol}; pass params=")
            params = DEFAULT_PARAMS[self.symbol]
        self.params = params
        self._rng = random.Random(derive_seed(seed, self.symbol))
        self._sizer = _Sizer(self.instrument, self._rng, params.size_sigma)
        self._tick = float(self.instrument.tick_size)
        self._base_var = params.step_vol**2
        self._omega = self._base_var * (1.0 - params.garch_alpha - params.garch_beta)
        self._jump_sd = params.jump_sd or 15.0 * params.step_vol
        self._log_mid = math.log(params.start_price)
        self._var = self._base_var
        self._spread = params.spread_mean_ticks
        self._steps = 0

    def _poisson(self, lam: float) -> int:
        """Knuth's method; fine for the tiny intensities used here."""
        limit, k, p = math.exp(-lam), 0, self._rng.random()
        while p > limit:
            k += 1
            p *= self._rng.random()
        return k

    def _advance(self) -> float:
        """Move the log mid one step; returns the diffusive shock (drives trade side)."""
        p = self.params
        shock = math.sqrt(self._var) * self._rng.gauss(0.0, 1.0)
        jump = sum(self._rng.gauss(0.0, self._jump_sd) for _ in range(self._poisson(p.jump_rate)))
        self._log_mid += shock - 0.5 * self._var + jump
        # Jumps stay out of the variance update so one gap cannot blow the volatility up for good.
        self._var = self._omega + p.garch_alpha * shock * shock + p.garch_beta * self._var
        self._spread += p.spread_kappa * (p.spread_mean_ticks - self._spread)
        self._spread += p.spread_sd_ticks * self._rng.gauss(0.0, 1.0)
        return shock

    def next_tick(self) -> SimTick:
        shock = self._advance() if self._steps else 0.0
        self._steps += 1
        inst, p = self.instrument, self.params
        ticks = max(1, round(self._spread))
        mid = _dec(math.exp(self._log_mid))
        bid = max(inst.round_price(mid - inst.tick_size * ticks / 2), inst.tick_size)
        ask = bid + inst.tick_size * ticks
        buy = self._rng.random() < 0.5 + (0.15 if shock > 0 else -0.15 if shock < 0 else 0.0)
        return SimTick(
            symbol=self.symbol,
            bid=bid,
            ask=ask,
            bid_size=self._sizer.draw(p.book_size),
            ask_size=self._sizer.draw(p.book_size),
            last=ask if buy else bid,
            last_qty=self._sizer.draw(p.trade_size),
        )


@dataclass(frozen=True, slots=True)
class CsvRow:
    ts: datetime
    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal


def read_csv_rows(csv_path: str | Path) -> list[CsvRow]:
    """Parse `ts,symbol,bid,ask,last`; symbols are canonicalized, prices rounded to the tick."""
    rows: list[CsvRow] = []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for n, rec in enumerate(csv.DictReader(fh), start=2):
            inst = get_instrument(rec["symbol"])
            ts = datetime.fromisoformat(rec["ts"])
            ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
            bid, ask, last = (inst.round_price(Decimal(rec[k].strip())) for k in ("bid", "ask", "last"))
            if not ask > bid > 0:
                raise ValueError(f"{csv_path}:{n}: need ask > bid > 0, got bid={bid} ask={ask}")
            rows.append(CsvRow(ts, inst.symbol, bid, ask, last))
    return rows


class CsvReplayPath:
    """Replays recorded top-of-book rows for one symbol; sizes are drawn from a seeded RNG."""

    def __init__(self, symbol: str, rows: Sequence[CsvRow], *, seed: int = 42, loop: bool = True,
                 params: WalkParams | None = None) -> None:
        self.instrument = get_instrument(symbol)
        self.symbol = self.instrument.symbol
        self._rows = [r for r in rows if r.symbol == self.symbol]
        if not self._rows:
            raise ValueError(f"no rows for {self.symbol}")
        self._loop = loop
        self._i = 0
        p = params or DEFAULT_PARAMS.get(self.symbol) or WalkParams(1.0, 1e-4)
        self._params = p
        self._sizer = _Sizer(self.instrument, random.Random(derive_seed(seed, self.symbol)), p.size_sigma)

    @classmethod
    def from_csv(cls, csv_path: str | Path, symbol: str, *, seed: int = 42,
                 loop: bool = True) -> CsvReplayPath:
        return cls(symbol, read_csv_rows(csv_path), seed=seed, loop=loop)

    def __len__(self) -> int:
        return len(self._rows)

    def next_tick(self) -> SimTick:
        if self._i >= len(self._rows):
            if not self._loop:
                raise PathExhaustedError(self.symbol)
            self._i = 0
        row = self._rows[self._i]
        self._i += 1
        return SimTick(
            symbol=self.symbol,
            bid=row.bid,
            ask=row.ask,
            bid_size=self._sizer.draw(self._params.book_size),
            ask_size=self._sizer.draw(self._params.book_size),
            last=row.last,
            last_qty=self._sizer.draw(self._params.trade_size),
            ts=row.ts,
        )


def load_csv_paths(csv_path: str | Path = SAMPLE_TICKS_CSV, *, seed: int = 42,
                   loop: bool = True) -> dict[str, CsvReplayPath]:
    """One replay path per symbol found in the file, ready for `MarketSimulator(paths=...)`."""
    rows = read_csv_rows(csv_path)
    symbols = dict.fromkeys(r.symbol for r in rows)
    return {s: CsvReplayPath(s, rows, seed=seed, loop=loop) for s in symbols}
