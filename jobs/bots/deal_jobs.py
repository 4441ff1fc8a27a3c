"""The deal engine's worker jobs (the daemon's deal engine enqueues them: daemon/deal_engine.py).

Each is keyed by what caused it, so a duplicated event queues nothing new while the first job is
known to Redis, and every job is idempotent anyway (jobs/bots/deal_runner.py):
- deal_event_job     `deal-fill:<fill id>` / `deal-order:<client order id>:<status>`: a deal's order
                     was filled or ended; the deal catches up with the ledger;
- deal_tick_job      `deal-tick:<deal>:<time>`: the price range since the last tick (trailing take
                     profit, stop loss and its timeout);
- deal_start_job     `deal-start:<bot>:<pair>:<trigger>`: start conditions held;
- deals_recover_job  `deals-recover:<why>:<time>`: every open deal reconciled with its venue;
- deal_command_job   the user's deal commands (command id).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from jobs.bots.deal_commands import deal_command
from jobs.bots.deal_recovery import recover_open_deals
from jobs.bots.deal_runner import drive
from jobs.bots.deal_start import start_bot_deal
from jobs.commands import DEAL_COMMANDS
from jobs.domain.dca.deal_events import PriceTick
from jobs.resources import Resources


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


async def deal_start_job(ctx: dict[str, Any], bot_id: str, pair: str, trigger: str,
                         signal_id: str | None = None) -> dict[str, Any]:
    outcome = await start_bot_deal(_res(ctx), bot_id, pair, trigger, signal_id=signal_id)
    return {"deal_id": outcome.deal_id, "message": outcome.message}


async def deals_recover_job(ctx: dict[str, Any]) -> int:
    return await recover_open_deals(_res(ctx))


async def deal_command_job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    cmd = DEAL_COMMANDS[payload["kind"]].model_validate(payload)
    return (await deal_command(_res(ctx), cmd)).model_dump(mode="json")


DEAL_JOBS = (deal_event_job, deal_tick_job, deal_start_job, deals_recover_job, deal_command_job)
