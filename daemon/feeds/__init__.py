"""Market-data feed clients: venue wire formats in, the shared `Quote` / `Trade` values out.

Why a package per dialect: each venue's framing, acks and reconnect rules differ, but everything
downstream (state view, strategies, risk) should only ever see `storage.values` types.
"""

from daemon.feeds.binance import BinanceFeedClient

__all__ = ["BinanceFeedClient"]
