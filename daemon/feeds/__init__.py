"""Market-data feed clients: venue wire formats in, the shared `Quote` / `Trade` values out.

Why a package per dialect: each venue's framing, acks and reconnect rules differ, but everything
downstream (state view, strategies, risk) should only ever see `storage.values` types.
"""

import jobs.venues.registry  # noqa: F401  (fills the instrument catalogue the symbols are looked up in)
from daemon.feeds.binance import BinanceFeedClient

__all__ = ["BinanceFeedClient"]
