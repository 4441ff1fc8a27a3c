"""Market statistics derived from the fake's trade tape: klines (`GET klines`) and the rolling 24 h
ticker (`GET ticker/24hr`, `<symbol>@ticker`).

Candles are built only from printed trades, so a test that prints trades at chosen times
(`trade(..., at_ms=...)`) can compute the expected OHLCV by hand.
"""

from __future__ import annotations

from decimal import Decimal

from tests.fakes.binance_spot.errors import BinanceError
from tests.fakes.binance_spot.records import BookTop, PublicTrade
from tests.fakes.binance_spot.wire import dec

INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
DAY_MS = 86_400_000


def interval_ms(interval: str) -> int:
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise BinanceError(-1120, "Invalid interval.") from None


def klines(
    tape: list[PublicTrade], symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
) -> list[list[object]]:
    """Binance's kline rows for the candles that have trades, oldest first: from `start_ms` onward when
    given, else the most recent `limit`."""
    width = interval_ms(interval)
    buckets: dict[int, list[PublicTrade]] = {}
    for trade in tape:
        if trade.symbol != symbol:
            continue
        if (start_ms is not None and trade.time_ms < start_ms) or (
            end_ms is not None and trade.time_ms > end_ms
        ):
            continue
        buckets.setdefault(trade.time_ms - trade.time_ms % width, []).append(trade)
    opens = sorted(buckets)
    opens = opens[:limit] if start_ms is not None else opens[-limit:]
    rows: list[list[object]] = []
    for open_ms in opens:
        trades = sorted(buckets[open_ms], key=lambda t: (t.time_ms, t.trade_id))
        prices = [t.price for t in trades]
        volume = sum((t.qty for t in trades), Decimal(0))
        quote_volume = sum((t.qty * t.price for t in trades), Decimal(0))
        taker_buys = [t for t in trades if not t.buyer_is_maker]
        rows.append(
            [
                open_ms,
                dec(prices[0]),
                dec(max(prices)),
                dec(min(prices)),
                dec(prices[-1]),
                dec(volume),
                open_ms + width - 1,
                dec(quote_volume),
                len(trades),
                dec(sum((t.qty for t in taker_buys), Decimal(0))),
                dec(sum((t.qty * t.price for t in taker_buys), Decimal(0))),
                "0",
            ]
        )
    return rows


def ticker_24h(tape: list[PublicTrade], top: BookTop, now_ms: int) -> dict[str, object]:
    """The rolling 24 h statistics Binance serves as `ticker/24hr`, over the printed trades."""
    trades = [t for t in tape if t.symbol == top.symbol and t.time_ms > now_ms - DAY_MS]
    mid = (top.bid + top.ask) / 2
    last = trades[-1].price if trades else mid
    first = trades[0].price if trades else mid
    volume = sum((t.qty for t in trades), Decimal(0))
    quote_volume = sum((t.qty * t.price for t in trades), Decimal(0))
    change = last - first
    return {
        "symbol": top.symbol,
        "priceChange": dec(change),
        "priceChangePercent": f"{(change / first * 100) if first else Decimal(0):.3f}",
        "weightedAvgPrice": dec(quote_volume / volume if volume else last),
        "prevClosePrice": dec(first),
        "lastPrice": dec(last),
        "lastQty": dec(trades[-1].qty if trades else Decimal(0)),
        "bidPrice": dec(top.bid),
        "bidQty": dec(top.bid_qty),
        "askPrice": dec(top.ask),
        "askQty": dec(top.ask_qty),
        "openPrice": dec(first),
        "highPrice": dec(max((t.price for t in trades), default=last)),
        "lowPrice": dec(min((t.price for t in trades), default=last)),
        "volume": dec(volume),
        "quoteVolume": dec(quote_volume),
        "openTime": now_ms - DAY_MS,
        "closeTime": now_ms,
        "firstId": trades[0].trade_id if trades else -1,
        "lastId": trades[-1].trade_id if trades else -1,
        "count": len(trades),
    }


def ticker_event(ticker: dict[str, object], event_time_ms: int) -> dict[str, object]:
    """`<symbol>@ticker` (event 24hrTicker) from the REST ticker's numbers."""
    t = ticker
    return {
        "e": "24hrTicker",
        "E": event_time_ms,
        "s": t["symbol"],
        "p": t["priceChange"],
        "P": t["priceChangePercent"],
        "w": t["weightedAvgPrice"],
        "x": t["prevClosePrice"],
        "c": t["lastPrice"],
        "Q": t["lastQty"],
        "b": t["bidPrice"],
        "B": t["bidQty"],
        "a": t["askPrice"],
        "A": t["askQty"],
        "o": t["openPrice"],
        "h": t["highPrice"],
        "l": t["lowPrice"],
        "v": t["volume"],
        "q": t["quoteVolume"],
        "O": t["openTime"],
        "C": t["closeTime"],
        "F": t["firstId"],
        "L": t["lastId"],
        "n": t["count"],
    }


def mini_ticker_event(ticker: dict[str, object], event_time_ms: int) -> dict[str, object]:
    t = ticker
    return {
        "e": "24hrMiniTicker",
        "E": event_time_ms,
        "s": t["symbol"],
        "c": t["lastPrice"],
        "o": t["openPrice"],
        "h": t["highPrice"],
        "l": t["lowPrice"],
        "v": t["volume"],
        "q": t["quoteVolume"],
    }
