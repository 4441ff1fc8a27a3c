"""Compact output schemas (mcp_bridge/schemas.py) accept exactly what pydantic's schemas accept."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from fastmcp import Client

from mcp_bridge.context import CommandOutcome
from mcp_bridge.schemas import compact_schema
from mcp_bridge.server import build_server
from mcp_bridge.tools.orders import OrderCommandResult
from storage.state.views import OrderView

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
RESULT = OrderCommandResult(
    command=CommandOutcome(
        command_id="place:1",
        kind="place_order",
        status="succeeded",
        command_status="succeeded",
        message="order filled",
        order_id="ord_1",
        details={"status": "filled"},
    ),
    order=OrderView(
        order_id="ord_1",
        client_order_id="td-1",
        command_id="place:1",
        venue="paper",
        symbol="BTC/USDT",
        side="buy",
        type="market",
        time_in_force="gtc",
        qty=Decimal("0.001"),
        notional=None,
        limit_price=None,
        stop_price=None,
        status="filled",
        filled_qty=Decimal("0.001"),
        avg_fill_price=Decimal("60000.1"),
        fees=Decimal("0.06"),
        created_at=NOW,
        updated_at=NOW,
    ),
).model_dump(mode="json")


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(RESULT)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


INSTANCES = [
    RESULT,
    _with(("order",), None),
    _with(("order", "qty"), None),
    _with(("order", "qty"), 5),  # a number where money is a string
    _with(("order", "status"), "bogus"),
    _with(("command", "command_status"), None),
    _with(("command", "command_status"), "exploded"),
    _with(("command", "order_id"), 7),
    _with(("order", "side"), None),  # required, not nullable
]


@pytest.mark.parametrize("instance", INSTANCES)
def test_compact_schema_accepts_and_refuses_what_the_original_does(instance: dict[str, Any]) -> None:
    original = OrderCommandResult.model_json_schema(mode="serialization")
    compact = compact_schema(original)
    assert compact != original  # there was something to compact

    def verdict(schema: dict[str, Any]) -> bool:
        return jsonschema.Draft202012Validator(schema).is_valid(instance)

    assert verdict(compact) == verdict(original)


async def test_tools_advertise_compact_output_schemas(settings) -> None:
    async with Client(build_server(settings)) as client:
        tools = {t.name: t for t in await client.list_tools()}
    schema = tools["place_order"].output_schema
    assert schema is not None
    (order,) = [
        o for o in schema["properties"]["order"]["anyOf"] if o != {"type": "null"}
    ]  # fastmcp inlines $defs
    qty = order["properties"]["qty"]
    assert qty["type"] == ["string", "null"] and "anyOf" not in qty
    assert None in schema["properties"]["command"]["properties"]["command_status"]["enum"]
