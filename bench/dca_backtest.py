"""`python -m bench dca_backtest`: a DCA bot backtested over a year of 1-minute candles, and a
sweep of 100 configurations over the same year on both cores (issue 11 item 5).

The bot is the issue's: BTC/USDT long, base 20 USDT, 6 safety orders of 40 USDT, 1.5 % step,
volume scale 1.3, step scale 1.2, take profit 2 % trailing 0.4 %, started when RSI-14 on 15 m is
under 30. The candles are the bundled synthetic year (jobs/backtest/sample_data.py: 525,600
minutes), generated before the clock starts (`sample_s`: the first generation in a process; the
worker keeps it cached). `seconds` is the best of 3 single runs: the start conditions' verdicts
over the year, the replay and the report (charts are not drawn). `charts_s` is the best of 3
writes of that report's charts (jobs/backtest/charts.py: PNG and the HTML page with its SVG),
`charts_cpu_s` their best CPU time (steadier than wall time on a loaded machine), `charts_first_s`
the first one in the process (fonts and caches loaded then). The sweep is 10 step
percents x 10 take-profit percents, 2 worker processes, pool start-up included.

Targets: seconds <= 0.2; charts_s <= 0.25 (matplotlib's floor for two renders is ~0.15 s of CPU:
docs/benchmarks.md); sweep_100_s <= 20.
Last line: `dca_backtest: seconds=… candles_per_s=… charts_s=… charts_cpu_s=… charts_first_s=… sample_s=…
sweep_100_s=…`.
"""

from __future__ import annotations

import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from jobs.backtest.charts import write_charts
from jobs.backtest.driver import BacktestOptions, run_backtest
from jobs.backtest.report import build_report
from jobs.backtest.sample_data import sample_candles
from jobs.backtest.sweep import expand_grid, sweep
from jobs.domain.dca.config import parse_bot_config
from jobs.domain.instruments import Instrument

PAIR = "BTC/USDT"
BTC = Instrument(PAIR, "BTC", "USDT", "crypto", tick_size=Decimal("0.01"), lot_size=Decimal("0.00001"),
                 min_qty=Decimal("0.00001"), min_notional=Decimal(5))
BOT: dict[str, Any] = {
    "name": "issue 11 bot", "pairs": [PAIR], "base_order": {"volume": "20"},
    "safety_orders": {"volume": "40", "step_percent": "1.5", "volume_scale": "1.3", "step_scale": "1.2",
                      "max_count": 6, "active_count": 2},
    "take_profit": {"percent": "2", "trailing_enabled": True, "trailing_deviation": "0.4"},
    "start_conditions": [{"kind": "rsi", "timeframe": "15m", "period": 14, "below": "30"}],
}
GRID = {"safety_orders.step_percent": ["0.8", "1", "1.2", "1.5", "1.8", "2", "2.2", "2.5", "2.8", "3"],
        "take_profit.percent": ["1", "1.25", "1.5", "1.75", "2", "2.5", "3", "3.5", "4", "5"]}


async def main() -> None:
    t0 = time.perf_counter()
    candles = sample_candles(PAIR)
    sample_s = time.perf_counter() - t0
    markets, instruments = {PAIR: candles}, {PAIR: BTC}
    config = parse_bot_config(BOT)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        report = build_report(run_backtest(config, markets, instruments, BacktestOptions()))
        runs.append(time.perf_counter() - t0)
    seconds = min(runs)
    f = report.figures()
    print(f"one bot: {len(candles)} candles, {report.fed_candles} fed to the engine, {f['deals']} deals, "
          f"profit {f['total_profit']} USDT, max drawdown {f['max_drawdown']}; "
          f"runs {[round(r, 3) for r in runs]}")
    charts, charts_cpu = [], []
    with tempfile.TemporaryDirectory() as out:
        for i in range(4):
            t0, c0 = time.perf_counter(), time.process_time()
            write_charts(report, candles.close, Path(out) / str(i), "issue 11 bot: BTC/USDT")
            charts.append(time.perf_counter() - t0)
            charts_cpu.append(time.process_time() - c0)
    print(f"charts: {[round(c, 3) for c in charts]} s, CPU {[round(c, 3) for c in charts_cpu]} s "
          "(the first loads fonts and caches)")
    variants = expand_grid(GRID)
    t0 = time.perf_counter()
    rows = sweep(BOT, variants, markets, instruments, metric="total_profit", workers=2)
    sweep_s = time.perf_counter() - t0
    best = rows[0]
    print(f"sweep: {len(rows)} variants, best {best.changes} "
          f"profit {best.figures and best.figures['total_profit']}")
    print(f"dca_backtest: seconds={seconds:.3f} candles_per_s={len(candles) / seconds:.0f} "
          f"charts_s={min(charts[1:]):.3f} charts_cpu_s={min(charts_cpu[1:]):.3f} "
          f"charts_first_s={charts[0]:.3f} sample_s={sample_s:.3f} "
          f"sweep_100_s={sweep_s:.2f}")
