"""Paper matching never holds up the market data, whatever Postgres does.

Found by the fault suite: during a silent-Postgres outage the quotes in Redis stopped moving,
because the feed's flush awaited paper matching, which waited on the database for a resting
order's fill. Here the daemon runs behind a proxy that goes silent, with a resting order that
every quote crosses, and the quotes must keep moving.
"""

from __future__ import annotations

from decimal import Decimal

from storage.repos.paper_book import PaperOrderRecord
from storage.state.reader import StateReader
from tests.stack import eventually, running_daemon
from tests.tcp_proxy import TcpProxy


def _matching(d):
    """The paper venue's matching loop in the daemon `d` (started by the venue registry)."""
    return d.res.venues.background["paper"]


async def test_quotes_keep_moving_while_matching_waits_on_a_silent_database(settings, redis):
    proxy = TcpProxy("127.0.0.1", 5432)
    port = await proxy.start()
    s = settings.model_copy(update={"database_url": settings.database_url.replace(
        "@127.0.0.1:5432/", f"@127.0.0.1:{port}/")})
    reader = StateReader(redis)
    try:
        async with running_daemon(s) as d:
            await eventually(lambda: reader.quote("BTC/USDT"), timeout=10)
            async with proxy.fault("blackhole"):
                # a buy limit far above the market: every BTC quote triggers a fill attempt
                _matching(d).book["BTC/USDT"] = [PaperOrderRecord(
                    "td-crossed", "paper-crossed", "BTC/USDT", "buy", "limit", Decimal("0.001"), None,
                    Decimal("10000000"), None, "open", Decimal(0))]
                first = (await reader.quote("BTC/USDT")).ts

                async def moved() -> bool:
                    q = await reader.quote("BTC/USDT")
                    return q is not None and (q.ts - first).total_seconds() >= 2

                await eventually(moved, timeout=6)  # matching waits up to 10 s per statement
    finally:
        await proxy.close()
