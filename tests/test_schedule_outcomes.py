"""Issue 9, defect 1: a schedule that can never buy is refused when created or changed, what may stop
some fires is a warning in the answer, and each run's outcome is kept on the schedule
(list_dca_schedules) with repeated failures reported by `health`. Through the fastmcp client,
against the real worker and daemon."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

from fastmcp import Client

from jobs.commands import CreateDcaSchedule
from mcp_bridge.server import build_server
from storage.settings import Settings
from storage.state.reader import StateReader
from tests.helpers import call, tool_error
from tests.stack import bridge_with_worker, command_queue, eventually, running_daemon, running_worker


async def _schedule(c: Client, sid: str) -> dict[str, Any]:
    listed = await call(c, "list_dca_schedules")
    return next(s for s in listed["schedules"] if s["schedule_id"] == sid)


async def test_a_schedule_that_can_never_buy_is_refused_when_created_or_changed(settings, redis, caplog):
    caplog.set_level(logging.INFO)
    s = settings.model_copy(update={"enforce_market_hours": True, "symbol_allowlist": ["BTC/USDT", "SPY"],
                                    "max_order_notional": Decimal("1000")})
    async with bridge_with_worker(s, redis) as c:
        msg = await tool_error(c, "create_dca_schedule", symbol="BTC/USDT", quote_amount="1500",
                               cron="0 9 * * mon")
        assert "above the max order notional 1000 USDT" in msg and "use at most 1000" in msg, msg
        msg = await tool_error(c, "create_dca_schedule", symbol="ETH/USDT", quote_amount="50",
                               cron="0 9 * * mon")
        assert "ETH/USDT is not in the symbol allowlist (BTC/USDT, SPY" in msg, msg
        for never_open in ("0 3 * * *", "0 15 * * sat,sun", "30 22 * * mon-fri"):
            msg = await tool_error(c, "create_dca_schedule", symbol="SPY", quote_amount="50", cron=never_open)
            assert "SPY trades only in the NYSE regular session" in msg and "'0 15 * * mon-fri'" in msg, msg
        assert (await call(c, "list_dca_schedules"))["count"] == 0  # nothing was kept

        # in session on trading days: accepted (a holiday among the next fires is a warning at most)
        ok = await call(c, "create_dca_schedule", symbol="SPY", quote_amount="50", cron="0 15 * * mon-fri")
        assert ok["command"]["status"] == "succeeded"
        assert all("outside the NYSE regular session" in w for w in ok["warnings"]), ok["warnings"]
        # every hour: most fires fall outside the session, which is a warning, not a refusal
        hourly = await call(c, "create_dca_schedule", symbol="SPY", quote_amount="50", cron="0 * * * *")
        assert hourly["command"]["status"] == "succeeded"
        # ("some of this schedule's fires fall outside...", or "the next fires..." on a weekend)
        assert any("fires fall outside the NYSE regular session" in w and "will be refused" in w
                   for w in hourly["warnings"]), hourly["warnings"]

        sid = ok["schedule"]["schedule_id"]
        msg = await tool_error(c, "update_dca_schedule", schedule_id=sid, action="change",
                               quote_amount="2000")
        assert "above the max order notional 1000 USD" in msg, msg
        msg = await tool_error(c, "update_dca_schedule", schedule_id=sid, action="change", cron="0 3 * * *")
        assert "none of this schedule's fires" in msg, msg
        kept = await _schedule(c, sid)
        assert Decimal(kept["quote_amount"]) == 50 and kept["cron"] == "0 15 * * mon-fri"
    # the bridge logs each refused call with its reason
    refused = [r.getMessage() for r in caplog.records if r.name == "tradingd.mcp"]
    assert any("update_dca_schedule" in m and "above the max order notional" in m for m in refused), refused


async def test_funds_short_today_is_a_warning_not_a_refusal(settings, redis):
    s = settings.model_copy(update={"paper_starting_balances": {"USDT": Decimal(100), "USD": Decimal(100)}})
    async with bridge_with_worker(s, redis) as c:
        created = await call(c, "create_dca_schedule", symbol="ETH/USDT", quote_amount="500", interval_s=3600)
        assert created["command"]["status"] == "succeeded"
        assert [w for w in created["warnings"] if "available USDT balance (100.00) is below quote_amount 500"
                in w], created["warnings"]
        sid = created["schedule"]["schedule_id"]
        # resuming (and changing) is judged again; enough funds: no warning
        changed = await call(c, "update_dca_schedule", schedule_id=sid, action="change", quote_amount="20")
        assert changed["warnings"] == []
        assert (await _schedule(c, sid))["last_outcome"] is None  # not run yet


async def _failing(c: Client, sid: str, n: int) -> dict[str, Any] | None:
    sch = await _schedule(c, sid)
    return sch if sch["consecutive_failures"] >= n else None


async def test_run_outcomes_are_kept_on_the_schedule_and_repeated_failures_reach_health(settings, redis,
                                                                                         caplog):
    caplog.set_level(logging.INFO)
    s: Settings = settings.model_copy(update={
        "paper_starting_balances": {"USDT": Decimal("1000"), "USD": Decimal("1000")}})
    async with running_daemon(s), running_worker(s), command_queue(s) as queue, \
            Client(build_server(s)) as c:
        await eventually(lambda: StateReader(redis).quote("ETH/USDT"), timeout=10)
        # every second (below the tools' 60 s minimum, so queued directly): two buys, then no funds
        done = await queue.submit(CreateDcaSchedule(
            command_id="outcomes:1", name="eth", symbol="ETH/USDT", quote_amount=Decimal("400"),
            interval_s=1), 10)
        assert done is not None and done.command.status == "succeeded", done
        sid = done.command.schedule_id
        sch = await eventually(lambda: _failing(c, sid, 3), timeout=20)
        assert sch["last_outcome"] == "failed"
        assert "risk check refused the order" in sch["last_error"] and "USDT with fees" in sch["last_error"]
        report = await call(c, "health")
        assert report["checks"]["schedules"] == "failing" and report["status"] != "ok"
        assert any(p.startswith(f"schedule {sid} (eth) failed its last") for p in report["problems"]), report

        # an amount the account can pay: the next run buys, and the failures in a row start again at 0
        await call(c, "update_dca_schedule", schedule_id=sid, action="change", quote_amount="10")

        async def recovered() -> dict[str, Any] | None:
            sch = await _schedule(c, sid)
            return sch if sch["last_outcome"] == "ordered" else None

        sch = await eventually(recovered, timeout=10)
        assert sch["consecutive_failures"] == 0 and sch["last_error"] is None
        await call(c, "update_dca_schedule", schedule_id=sid, action="pause")
        report = await call(c, "health")
        assert report["checks"]["schedules"] == "ok", report
    logged = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert any(n == "tradingd.dca" and "fired for" in m and sid in m for n, _, m in logged)
    assert any(n == "tradingd.dca" and lvl == logging.WARNING and "failed" in m and "USDT with fees" in m
               for n, lvl, m in logged)
    assert any(n == "tradingd.dca" and ": ordered, order ord_" in m for n, _, m in logged)
    assert any(n == "tradingd.fills" and "ETH/USDT buy" in m for n, _, m in logged), logged[-20:]


async def test_fires_missed_while_the_daemon_was_down_show_as_skipped(settings, redis):
    async with running_worker(settings), command_queue(settings) as queue, \
            Client(build_server(settings)) as c:
        done = await queue.submit(CreateDcaSchedule(
            command_id="outcomes:missed", name="btc", symbol="BTC/USDT", quote_amount=Decimal("20"),
            interval_s=4, misfire_grace_s=0), 10)
        assert done is not None and done.command.status == "succeeded", done
        sid = done.command.schedule_id
        # two fires pass with no daemon to fire them; the view is read before the third (at 12 s)
        await asyncio.sleep(9)
        async with running_daemon(settings):
            async def skipped() -> dict[str, Any] | None:
                sch = await _schedule(c, sid)
                return sch if sch["last_outcome"] == "skipped_missed" else None

            sch = await eventually(skipped, timeout=10)
    assert "missed while the daemon was down" in sch["last_error"]
    assert sch["consecutive_failures"] == 0  # a downtime is not the schedule failing
