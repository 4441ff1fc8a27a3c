"""Local market simulator: seeded price paths served over a Binance-compatible websocket.

Why it exists: the daemon, the feeds and the tests need live-looking market data without a network,
an account or a clock-dependent venue. Same seed, same prices; the wire dialect is the real one, so
the production feed client is what gets exercised.
"""

import jobs.venues.registry  # noqa: F401  (fills the instrument catalogue the symbols are looked up in)
from daemon.simulator.paths import (
    SAMPLE_TICKS_CSV,
    CsvReplayPath,
    PricePath,
    RandomWalkPath,
    SimTick,
    WalkParams,
    load_csv_paths,
)
from daemon.simulator.server import MarketSimulator

__all__ = [
    "SAMPLE_TICKS_CSV",
    "CsvReplayPath",
    "MarketSimulator",
    "PricePath",
    "RandomWalkPath",
    "SimTick",
    "WalkParams",
    "load_csv_paths",
]
