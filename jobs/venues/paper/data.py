"""The paper venue's market data: the quotes it fills against.

The simulated exchange has no market of its own: the daemon's feed client streams the simulator
(or a Binance-dialect feed) into the state view, and the venue prices orders from the quote
there, as a venue matches against its own book. A quote the feed flagged stale, or older than
`stale_after_s`, gives no fill: the order is rejected with the reason instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.state.reader import StateReader
from storage.values import Quote


class StateQuotes:
    def __init__(self, reader: StateReader, stale_after_s: float) -> None:
        self.reader = reader
        self.stale_after = timedelta(seconds=stale_after_s)

    async def fresh_quote(self, symbol: str) -> Quote | None:
        """The symbol's quote now, or None if there is none fresh enough to fill against."""
        q = await self.reader.quote(symbol)
        if q is None or q.stale:
            return None
        ts = q.ts.astimezone(UTC)
        if datetime.now(UTC) - ts > self.stale_after:
            return None
        return Quote(q.symbol, q.bid, q.ask, q.bid_size, q.ask_size, ts, q.last)
