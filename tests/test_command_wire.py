"""Commands on the wire: a payload queued or stored by an older run must still decode to the same
command, and every kind must reach the job that runs it.

Why pinned bytes: a command's JSON is its arq job payload and its stored row (jobs/queue.py), both
outliving a release; a refactor that reorders fields or renames a kind would change them silently.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from decimal import Decimal

import pytest
from pydantic import BaseModel

from jobs.commands import (
    BACKTEST_COMMANDS,
    BOT_COMMANDS,
    DEAL_COMMANDS,
    JOB_FOR_KIND,
    SCHEDULE_COMMANDS,
    AnyCommand,
    CompareBacktests,
    PlaceOrder,
)

# the job each kind's table is read by (jobs/worker.py, jobs/bots/deal_jobs.py, jobs/backtest/command.py)
TABLES: dict[str, Mapping[str, type[BaseModel]]] = {"schedule_command_job": SCHEDULE_COMMANDS,
                                                   "bot_command_job": BOT_COMMANDS,
                                                   "deal_command_job": DEAL_COMMANDS,
                                                   "backtest_command_job": BACKTEST_COMMANDS}

OLDER_PAYLOADS = [
    '{"command_id":"mcp:1","source":"mcp","symbol":"BTC/USDT","side":"buy","type":"limit","qty":"0.5",'
    '"notional":null,"limit_price":"60000.1","stop_price":null,"time_in_force":"gtc","trail_amount":null,'
    '"trail_percent":null,"order_class":"simple","take_profit_price":null,"stop_loss_price":null,'
    '"stop_loss_limit_price":null,"kind":"place_order","schedule_id":null,"deal_id":null}',
    '{"command_id":"mcp:2","source":"mcp","kind":"update_dca_schedule","schedule_id":"s-1","action":"change",'
    '"name":null,"quote_amount":"25.5","cron":null,"interval_s":3600,"misfire_grace_s":null,"max_price":null}',
    '{"command_id":"mcp:3","source":"mcp","kind":"disable_bot","bot_id":"bot_abc1","reason":"paused"}',
    '{"command_id":"mcp:4","source":"mcp","kind":"add_safety_order","deal_id":"deal_x1","volume":"10",'
    '"price":null,"order_type":"market"}',
    '{"command_id":"mcp:5","source":"sample","kind":"compare_backtests","config":{"name":"b"},"days":30,'
    '"symbol":null,"start":null,"end":null,"variants":[{"take_profit.percent":"2"}]}',
]


def command_classes() -> list[type[BaseModel]]:
    return [*typing.get_args(AnyCommand), CompareBacktests]


def test_every_kind_reaches_its_job_and_the_table_that_job_decodes_with() -> None:
    kinds = {c.model_fields["kind"].default: c for c in command_classes()}
    assert set(JOB_FOR_KIND) == set(kinds)
    for kind, cls in kinds.items():
        table = TABLES.get(JOB_FOR_KIND[kind])
        assert table is None or table[kind] is cls, kind


@pytest.mark.parametrize("payload", OLDER_PAYLOADS, ids=lambda p: json.loads(p)["kind"])
def test_a_payload_of_an_older_run_decodes_and_encodes_to_the_same_bytes(payload: str) -> None:
    raw = json.loads(payload)
    job = JOB_FOR_KIND[raw["kind"]]
    cls: type[BaseModel] = TABLES[job][raw["kind"]] if job in TABLES else PlaceOrder
    cmd = cls.model_validate(raw)
    assert cmd.model_dump_json() == payload
    assert cmd.model_dump(mode="json") == raw  # what jobs/queue.py hands arq


def test_an_order_command_carries_every_field_into_its_spec_by_name() -> None:
    cmd = PlaceOrder(command_id="c:1", symbol="ETH/USDT", side="sell", type="stop_limit", qty=Decimal(1),
                     notional=Decimal(2), limit_price=Decimal(3), stop_price=Decimal(4), time_in_force="ioc",
                     trail_amount=Decimal(5), trail_percent=Decimal(6), order_class="bracket",
                     take_profit_price=Decimal(7), stop_loss_price=Decimal(8),
                     stop_loss_limit_price=Decimal(9))
    spec = cmd.spec()
    assert dataclasses.asdict(spec) == {f.name: getattr(cmd, f.name) for f in dataclasses.fields(spec)}
