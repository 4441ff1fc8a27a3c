"""A parameter sweep: one bot configuration run over a grid of changes, on both cores.

A grid names configuration fields by dotted path ("safety_orders.step_percent") with the values
to try; every combination is a variant (the base configuration with those fields set). Variants
run in a ProcessPoolExecutor (2 workers by default: the machine's cores; the GIL keeps threads
from helping CPU-bound work). The candles are handed to each worker once, by the pool's
initializer, not once per variant. Workers are spawned, not forked: the caller may be a worker
process with open sockets and threads, which a fork would copy.

Every variant is its own single run (run_backtest, build_report), so a sweep's figures equal
the runs one by one; a variant whose configuration is refused gets its problems instead.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from jobs.backtest.candles import Candles
from jobs.backtest.driver import BacktestError, BacktestOptions, run_backtest
from jobs.backtest.report import build_report
from jobs.domain.dca.config import BotConfigError, parse_bot_config
from jobs.domain.instruments import Instrument

WORKERS = 2
MAX_VARIANTS = 1_000
ASCENDING = frozenset({"max_drawdown", "max_drawdown_percent", "peak_capital_used", "losses", "fees"})
METRICS = ("total_profit", "profit_percent_of_capital", "max_drawdown", "max_drawdown_percent",
           "peak_capital_used", "deals", "wins", "losses", "safety_orders_used", "time_in_deals_percent",
           "fees")


@dataclass(frozen=True, slots=True)
class SweepRow:
    changes: dict[str, Any]
    figures: dict[str, Any] | None  # BacktestReport.figures(); None when refused
    error: str | None = None

    def metric(self, name: str) -> Decimal:
        if self.figures is None:
            return Decimal("-Infinity") if name not in ASCENDING else Decimal("Infinity")
        return Decimal(str(self.figures[name]))


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as {dotted path: value}."""
    if not grid or any(not values for values in grid.values()):
        raise ValueError("a grid needs at least one field with at least one value")
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    if len(combos) > MAX_VARIANTS:
        raise ValueError(f"the grid makes {len(combos)} variants; at most {MAX_VARIANTS}")
    return combos


def parse_grid(spec: str) -> dict[str, list[str]]:
    """"safety_orders.step_percent=1,1.5,2;take_profit.percent=1.5,2" as a grid."""
    grid: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        key, sep, values = part.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ValueError(f"grid part {part!r}: write field.path=v1,v2,...")
        grid[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def with_changes(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with each dotted path set (objects along the path created as needed)."""
    out: dict[str, Any] = _copy(base)
    for path, value in changes.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            child = node.get(p)
            node[p] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[leaf] = _number(value)
    return out


def _copy(x: Any) -> Any:
    return {k: _copy(v) for k, v in x.items()} if isinstance(x, Mapping) else x


def _number(value: Any) -> Any:
    """Grid values from a command line are text: "1.5" is meant as a number, "true" as a flag."""
    if not isinstance(value, str):
        return value
    if value in ("true", "false"):
        return value == "true"
    try:
        d = Decimal(value)
    except InvalidOperation:
        return value
    return int(d) if d == d.to_integral_value() and "." not in value else value


_STATE: dict[str, Any] = {}


def _init(markets: Mapping[str, Candles], instruments: Mapping[str, Instrument],
          options: BacktestOptions) -> None:
    _STATE.update(markets=markets, instruments=instruments, options=options)


def run_variant(base: Mapping[str, Any], changes: dict[str, Any]) -> SweepRow:
    """One variant in this process (the pool's task; also what a single run gives)."""
    try:
        config = parse_bot_config(with_changes(base, changes))
        run = run_backtest(config, _STATE["markets"], _STATE["instruments"], _STATE["options"])
    except (BotConfigError, BacktestError) as e:
        return SweepRow(changes, None, str(e))
    return SweepRow(changes, build_report(run).figures())


def sweep(base: Mapping[str, Any], variants: Sequence[dict[str, Any]], markets: Mapping[str, Candles],
          instruments: Mapping[str, Instrument], options: BacktestOptions | None = None, *,
          metric: str = "total_profit", workers: int = WORKERS) -> list[SweepRow]:
    """Every variant's figures, best first by `metric` (highest, or lowest for drawdown, capital,
    losses and fees); refused variants last."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: use one of {', '.join(METRICS)}")
    options = options or BacktestOptions()
    if workers <= 1:
        _init(markets, instruments, options)
        rows = [run_variant(base, v) for v in variants]
    else:
        context = multiprocessing.get_context("spawn")
        data = (dict(markets), dict(instruments), options)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init,
                                 initargs=data) as pool:
            rows = list(pool.map(run_variant, itertools.repeat(base), variants,
                                 chunksize=max(1, len(variants) // (workers * 4))))
    descending = metric not in ASCENDING
    ok = sorted((r for r in rows if r.figures is not None), key=lambda r: r.metric(metric),
                reverse=descending)
    return ok + [r for r in rows if r.figures is None]
