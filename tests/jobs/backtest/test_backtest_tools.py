"""backtest_bot and compare_backtests end to end: the in-memory MCP client on the bridge, the real
worker behind it (the backtest runs there), Postgres and Redis. Figures and chart files; a stored
bot by id; the variants' table; refusals (config and bot id together, a bad config, bars without a
range, no bars stored)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from storage.settings import Settings
from tests.helpers import call, put_quote, tool_error

BOT: dict[str, Any] = {
    "name": "btc dip", "pairs": ["BTC/USDT"], "base_order": {"volume": 20},
    "safety_orders": {"volume": 40, "step_percent": 1.5, "max_count": 6, "volume_scale": 1.3,
                      "step_scale": 1.2},
    "take_profit": {"percent": 2}}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"backtest_dir": tmp_path / "backtests"})


def _files(png: Path, page: Path) -> tuple[bool, str]:
    return png.exists(), page.read_text()


async def test_backtest_bot_returns_the_figures_and_writes_the_charts(client: Client,
                                                                      settings: Settings) -> None:
    out = await call(client, "backtest_bot", config=BOT, days=60)
    assert out["command"]["status"] == "succeeded"
    bt = out["backtest"]
    assert bt["candles"] == 60 * 1440 and bt["deals"] > 10 and bt["wins"] + bt["losses"] == bt["deals"]
    assert "synthetic" in bt["data"]
    for key in ("total_profit", "max_drawdown", "peak_capital_used", "safety_orders_used",
                "time_in_deals_percent"):
        assert key in bt
    png, page = Path(bt["chart_png"]), Path(bt["chart_html"])
    exists, text = _files(png, page)
    assert png.parent.parent == settings.backtest_dir and exists
    assert not re.search(r"https?:", text)
    first = bt["first_deals"][0]
    assert {"opened_at", "closed_at", "entry_price", "exit_price", "safety_orders_used", "profit",
            "profit_percent", "fees", "duration_s"} <= first.keys()
    again = await call(client, "backtest_bot", config=BOT, days=60)
    assert again["backtest"]["total_profit"] == bt["total_profit"]  # the same inputs, the same figures


async def test_a_stored_bot_is_backtested_by_id(client: Client, redis: Any) -> None:
    await put_quote(redis, "BTC/USDT", "59990", "60000")
    created = await call(client, "create_dca_bot", config=BOT)
    bot_id = created["bot"]["bot_id"]
    by_id = await call(client, "backtest_bot", bot_id=bot_id, days=30)
    by_config = await call(client, "backtest_bot", config=BOT, days=30)
    assert by_id["backtest"]["total_profit"] == by_config["backtest"]["total_profit"]


async def test_compare_backtests_tables_each_variant(client: Client) -> None:
    out = await call(client, "compare_backtests", config=BOT, days=30,
                     variants=[{"take_profit.percent": 3}, {"safety_orders.step_percent": 2.5},
                               {"take_profit.percent": 0}])
    rows = out["variants"]
    assert [r["changes"] for r in rows] == [{}, {"take_profit.percent": 3},
                                            {"safety_orders.step_percent": 2.5}, {"take_profit.percent": 0}]
    assert "refused" in rows[3] and "take_profit" in rows[3]["refused"]
    single = await call(client, "backtest_bot", config={**BOT, "take_profit": {"percent": 3}}, days=30)
    assert rows[1]["total_profit"] == single["backtest"]["total_profit"]
    assert rows[1]["deals"] == single["backtest"]["deals"] and rows[0]["deals"] != rows[1]["deals"]


async def test_refusals(client: Client) -> None:
    assert "not both" in await tool_error(client, "backtest_bot", config=BOT, bot_id="bot_x1")
    assert "not both" in await tool_error(client, "backtest_bot")
    bad = await tool_error(client, "backtest_bot", config={**BOT, "take_profit": {"percent": 0}})
    assert "take_profit" in bad and "refused" in bad
    assert "needs start and end" in await tool_error(client, "backtest_bot", config=BOT, source="bars")
    none = await tool_error(client, "backtest_bot", config=BOT, source="bars", start="2025-01-01T00:00:00Z",
                            end="2025-01-02T00:00:00Z")
    assert "rejected" in none and "no 1m bars" in none
    assert "no bot" in await tool_error(client, "backtest_bot", bot_id="bot_missing1")


async def test_a_backtest_on_bars_stored_in_postgres(client: Client, sessions: Any) -> None:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from storage.bars import BarRepository
    from storage.values import Bar
    from tests.jobs.backtest.paths import ramp

    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    closes = [*ramp(60000, 57000, 120), *ramp(57000, 62000, 120)] * 3
    await BarRepository(sessions).upsert([
        Bar(venue="paper", symbol="BTC/USDT", timeframe="1m", open_time=t0 + timedelta(minutes=i),
            open=Decimal(str(c)), high=Decimal(str(c)) + 5, low=Decimal(str(c)) - 5, close=Decimal(str(c)),
            volume=Decimal(1), trades=1, closed=True) for i, c in enumerate(closes)])
    out = await call(client, "backtest_bot", config=BOT, source="bars", symbol="BTC/USDT",
                     start="2025-03-01T00:00:00Z", end="2025-03-02T00:00:00Z")
    bt = out["backtest"]
    assert bt["candles"] == len(closes) and bt["deals"] >= 3 and "Postgres" in bt["data"]
    assert bt["start"] == "2025-03-01T00:00:00+00:00"
