"""get_portfolio through the fastmcp client against a real worker: equity in a chosen currency,
positions at their bid, what cannot be converted kept apart, and the day's change."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastmcp.exceptions import ToolError

from storage.state import keys
from tests.stack import FRESH_QUOTES, bridge_with_worker, eventually
from tests.test_history import _call, _place


def _today() -> str:
    return keys.day_start_equity(datetime.now(UTC).date().isoformat())


def _d(x: Any) -> Decimal:
    return Decimal(str(x))


async def test_equity_positions_and_day_change(settings, redis):
    quotes = dict(FRESH_QUOTES)  # the test feed rewrites these every 0.5 s: changing one moves the market
    async with bridge_with_worker(settings, redis, quotes) as c:
        start = await _call(c, "get_portfolio")
        assert start["quote"] == "USDT"
        assert _d(start["equity"]) == _d(start["cash"]) == Decimal("100000")
        assert _d(start["day_start_equity"]) == Decimal("100000") and _d(start["day_change"]) == 0
        assert any("first valuation" in n for n in start["notes"])
        # USD (the paper account's other cash) has no USD/USDT pair: apart, never added 1:1
        apart = [(a["currency"], _d(a["equity"])) for a in start["not_converted"]]
        assert apart == [("USD", Decimal("100000"))]
        assert {x["asset"]: x["value"] for x in start["cash_balances"]} == {"USD": None, "USDT": "100000.00"}

        bought = await _place(c, symbol="BTC/USDT", side="buy", type="market", qty="0.1")
        price, fee = _d(bought["avg_fill_price"]), _d(bought["fees"])
        cash = Decimal("100000") - price * Decimal("0.1") - fee
        now = await _call(c, "get_portfolio")
        [btc] = now["positions"]
        assert btc["symbol"] == "BTC/USDT" and btc["in_equity"] and _d(btc["mark_price"]) == Decimal("60000")
        assert _d(btc["market_value"]) == Decimal("6000")  # at the bid, not the mid or the ask
        unrealized = (Decimal("60000") - price) * Decimal("0.1")
        assert _d(btc["unrealized_pnl"]) == unrealized.quantize(Decimal("0.01"))
        assert _d(btc["fees"]) == fee
        assert _d(now["cash"]) == cash.quantize(Decimal("0.01"))
        assert _d(now["equity"]) == (cash + Decimal("6000")).quantize(Decimal("0.01"))
        assert _d(now["fees"]) == fee.quantize(Decimal("0.01"))
        # money at the currency's precision, never an exponent or 18 decimals
        assert all(len(now[k].split(".")[1]) == 2 for k in ("equity", "cash", "unrealized_pnl", "day_change"))
        assert btc["market_value"] == "6000.00" and btc["mark_price"] == "60000.00"
        positions = (await _call(c, "get_positions"))
        positions = positions.get("result", positions)["positions"]
        assert _d(now["realized_pnl"]) == _d(positions[0]["realized_pnl"]).quantize(Decimal("0.01"))
        # the day's change counts from the first valuation of the day, which stays
        assert now["day_start_at"] == start["day_start_at"]
        assert _d(now["day_change"]) == _d(now["equity"]) - Decimal("100000") < 0

        quotes["BTC/USDT"] = ("61000.00", "61010.00")
        moved = await eventually(lambda: _moved(c))
        assert _d(moved["equity"]) == (cash + Decimal("6100")).quantize(Decimal("0.01"))
        assert _d(moved["day_change"]) == _d(moved["equity"]) - Decimal("100000") > 0
        assert _d(moved["day_change_pct"]) == (_d(moved["day_change"]) / 1000).quantize(Decimal("0.01"))

        # valued in BTC: USDT converts through BTC/USDT's ask
        in_btc = await _call(c, "get_portfolio", quote="btc")
        assert in_btc["quote"] == "BTC"
        want = (Decimal("0.1") + cash / Decimal("61010.00")).quantize(Decimal("0.00000001"))
        assert _d(in_btc["equity"]) == want

        # the day's first valuation is live data: when Redis loses it, the next one starts the day again
        await redis.delete(_today())
        again = await _call(c, "get_portfolio")
        assert _d(again["day_change"]) == 0 and again["day_start_at"] != start["day_start_at"]


async def _moved(c: Any) -> dict[str, Any] | None:
    p = await _call(c, "get_portfolio")
    return p if _d(p["positions"][0]["mark_price"]) == Decimal("61000") else None


async def test_other_currency_apart_and_missing_quote(settings, redis):
    quotes = dict(FRESH_QUOTES)
    async with bridge_with_worker(settings, redis, quotes) as c:
        spy = await _place(c, symbol="SPY", side="buy", type="market", qty="2")
        await _place(c, symbol="ETH/USDT", side="buy", type="market", qty="0.1")
        usd_cash = Decimal("100000") - _d(spy["avg_fill_price"]) * 2 - _d(spy["fees"])
        p = await _call(c, "get_portfolio")
        by_symbol = {h["symbol"]: h for h in p["positions"]}
        assert not by_symbol["SPY"]["in_equity"] and by_symbol["SPY"]["currency"] == "USD"
        [usd] = p["not_converted"]
        assert _d(usd["positions_value"]) == Decimal("1000")  # 2 at the 500.00 bid
        assert _d(usd["equity"]) == (usd_cash + Decimal("1000")).quantize(Decimal("0.01"))
        assert _d(p["positions_value"]) == _d(by_symbol["ETH/USDT"]["market_value"]) == Decimal("300")
        assert any("USD" in n and "not_converted" in n for n in p["notes"])

        # in USD it is the other way round
        in_usd = await _call(c, "get_portfolio", quote="USD")
        assert _d(in_usd["equity"]) == _d(usd["equity"])
        assert [a["currency"] for a in in_usd["not_converted"]] == ["USDT"]

        # a held position without a quote is left out and said so; there is no day's change then,
        # and such a partial valuation never starts the day
        del quotes["ETH/USDT"]
        await redis.delete(keys.quote("ETH/USDT"))
        partial = await _call(c, "get_portfolio")
        eth = next(h for h in partial["positions"] if h["symbol"] == "ETH/USDT")
        assert eth["mark_price"] is None and eth["market_value"] is None
        assert any("ETH/USDT: no quote" in n for n in partial["notes"])
        assert partial["day_start_equity"] == p["day_start_equity"] and partial["day_change"] is None
        assert partial["not_converted"][0]["day_change"] is None
        await redis.delete(_today())
        partial = await _call(c, "get_portfolio")
        assert partial["day_start_equity"] is None and partial["day_change"] is None
        assert not await redis.exists(_today())

        with pytest.raises(ToolError, match="cannot value in 'EUR'; use one of: BTC, ETH, USD, USDT"):
            await c.call_tool("get_portfolio", {"quote": "EUR"})


async def test_tools_are_titled_and_read_only(settings, redis):
    async with bridge_with_worker(settings, redis) as c:
        tools = {t.name: t for t in await c.list_tools()}
        for name, title in (("get_portfolio", "Portfolio summary"), ("list_orders", "List orders"),
                            ("list_fills", "List fills")):
            t = tools[name]
            assert t.title == title and t.annotations.title == title
            assert t.annotations.readOnlyHint and not t.annotations.destructiveHint
            assert t.annotations.openWorldHint is False
