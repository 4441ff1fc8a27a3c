"""The deal engine's worker jobs (the daemon's deal engine enqueues them: daemon/deal_engine.py).

Each is keyed by what caused it, so a duplicated event queues nothing new while the first job is
known to Redis, and every job is idempotent anyway (jobs/bots/deal_runner.py):
- deal_event_job     `deal-fill:<fill id>` / `deal-order:<client order id>:<status>`: a deal's order
                     was filled or ended; the deal catches up with the ledger;
- deal_tick_job      `deal-tick:<deal>:<time>`: the price range since the last tick (trailing take
                     profit, stop loss and its timeout);
- deal_bar_job       `deal-bar:<bot>:<bar event id>`: a closed 1 m bar for one bot on one pair:
                     first a PriceTick for each of the bot's open deals there (each driven until it
                     asks for nothing more, so a stop the bar touches has sold and closed its deal),
                     then the start the bar triggered, if any. One job, in that order, so a start
                     on the bar that closed a deal finds its slot free, as the backtest does
                     (jobs/backtest/driver.py: a candle's fills and ticks, then its starts);
- deal_start_job     `deal-start:<bot>:<pair>:<trigger>`: start conditions held (a signal, ASAP, a
                     start delay's end, a bar of a longer timeframe: that one first waits, bounded,
                     for the deal_bar_job of the 1 m bar that closed with it, so its ticks go first
                     too);
- deals_recover_job  `deals-recover:<why>:<time>`: every open deal reconciled with its venue;
- deal_command_job   the user's deal commands (command id).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from jobs.bots.deal_commands import deal_command
from jobs.bots.deal_recovery import recover_open_deals
from jobs.bots.deal_runner import drive
from jobs.bots.deal_start import start_bot_deal
from jobs.commands import DEAL_COMMANDS
from jobs.domain.dca.deal_events import PriceTick
from jobs.exclusive import Busy
from jobs.queue import wait_for_job
from jobs.resources import Resources
from storage.outage import unavailable

log = logging.getLogger("tradingd.deals")
AFTER_WAIT_S = 10.0  # a longer bar's start waits this long at most for its 1 m bar's ticks


def _res(ctx: dict[str, Any]) -> Resources:
    res: Resources = ctx["res"]
    return res


async def deal_event_job(ctx: dict[str, Any], deal_id: str) -> str | None:
    deal = await drive(_res(ctx), deal_id)
    return None if deal is None else deal.status.value


async def deal_tick_job(ctx: dict[str, Any], deal_id: str, high: str, low: str, close: str,
                        at: str) -> str | None:
    tick = PriceTick(Decimal(high), Decimal(low), Decimal(close), datetime.fromisoformat(at))
    deal = await drive(_res(ctx), deal_id, [tick])
    return None if deal is None else deal.status.value


async def deal_bar_job(ctx: dict[str, Any], bot_id: str, pair: str, high: str, low: str, close: str,
                       at: str, deal_ids: list[str], trigger: str | None = None) -> dict[str, Any]:
    """The bar's ticks, then its start (module docstring). Every tick is tried even if one fails,
    and the start after them; the first failure is raised at the end (the job reports it). A
    retry after an outage ticks again with the same bar, as a retried deal_tick_job did."""
    res = _res(ctx)
    tick = PriceTick(Decimal(high), Decimal(low), Decimal(close), datetime.fromisoformat(at))
    ticked: dict[str, str | None] = {}
    failed: list[Exception] = []
    for deal_id in deal_ids:
        try:
            deal = await drive(res, deal_id, [tick])
        except Exception as e:
            if unavailable(e) or isinstance(e, Busy):
                raise  # retried whole (jobs/job_guard.py): nothing of the start has run yet
            log.exception("deal %s: the tick of bar %s failed", deal_id, at)
            failed.append(e)
            continue
        ticked[deal_id] = None if deal is None else deal.status.value
    out: dict[str, Any] = {"ticked": ticked}
    if trigger is not None:
        outcome = await start_bot_deal(res, bot_id, pair, trigger)
        out |= {"deal_id": outcome.deal_id, "message": outcome.message}
    if failed:
        raise failed[0]
    return out


async def deal_start_job(ctx: dict[str, Any], bot_id: str, pair: str, trigger: str,
                         signal_id: str | None = None, after: str | None = None) -> dict[str, Any]:
    """`after`: the deal_bar_job of the 1 m bar that closed with this trigger's longer bar; its
    ticks go first (waited for up to AFTER_WAIT_S, then the start is asked anyway)."""
    res = _res(ctx)
    if after is not None and not await wait_for_job(res.redis, res.settings.queue_name, after,
                                                    timeout_s=AFTER_WAIT_S):
        log.warning("bot %s: the start for %s asked before bar job %s ended", bot_id, trigger, after)
    outcome = await start_bot_deal(res, bot_id, pair, trigger, signal_id=signal_id)
    return {"deal_id": outcome.deal_id, "message": outcome.message}


async def deals_recover_job(ctx: dict[str, Any]) -> int:
    return await recover_open_deals(_res(ctx))


async def deal_command_job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    cmd = DEAL_COMMANDS[payload["kind"]].model_validate(payload)
    return (await deal_command(_res(ctx), cmd)).model_dump(mode="json")


DEAL_JOBS = (deal_event_job, deal_tick_job, deal_bar_job, deal_start_job, deals_recover_job, deal_command_job)
