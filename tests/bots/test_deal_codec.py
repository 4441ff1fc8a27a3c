"""deals.state round trip (jobs/bots/deal_codec.py): every deal the scenario driver walks through
(orders resting and cancelling, partial fills, trailing, stop loss, a short) comes back equal
from JSON text, Decimals digit for digit and times in UTC; the typed columns follow the deal."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from jobs.bots.deal_codec import deal_from_json, deal_to_json, new_record, updated_record
from tests.jobs.domain.dca.deal_sim import Driver, SimVenue, bars, ramp
from tests.jobs.domain.dca.issue_bot import BTC, bot

D = Decimal


@pytest.mark.parametrize("config, path, partial", [
    (bot(), ramp(60000, 50000, 41) + ramp(50000, 56000, 13), False),
    (bot(stop_loss={"percent": "5", "trailing": True}), ramp(60000, 52000, 30), True),
    (bot(take_profit={"percent": "2", "trailing_enabled": True, "trailing_deviation": "0.5"}),
     ramp(60000, 59000, 5) + ramp(59000, 63000, 20) + ramp(63000, 61000, 10), False),
    (bot(strategy="short"), ramp(60000, 64000, 20) + ramp(64000, 58000, 20), True),
])
def test_every_state_of_a_deal_comes_back_equal(config, path, partial):
    d = Driver(config, BTC, venue=SimVenue(BTC, partial=partial))
    d.start(D(60000))
    d.path(bars(*path, spread=D(30)))
    assert len(d.history) > 10
    for deal in d.history:
        back = deal_from_json(json.loads(json.dumps(deal_to_json(deal))))
        assert back == deal
        assert back.bought_cost == deal.bought_cost and str(back.bought_cost) == str(deal.bought_cost)


def test_the_typed_columns_follow_the_deal():
    d = Driver(bot(), BTC)
    d.start(D(60000))
    record = new_record(d.history[0], "paper")
    assert (record.status, record.profit_quote, record.symbol) == ("base_order_placed", None, "BTC/USDT")
    deal = d.path(bars(*ramp(60000, 50000, 41) + ramp(50000, 56000, 13)))
    done = updated_record(record, deal)
    assert done.status == "completed" and done.profit_quote == deal.realized_profit > 0
    assert done.closed_at == deal.closed_at and done.fees == deal.fees
