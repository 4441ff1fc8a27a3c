"""`python -m bench NAME`: roundtrip | state_read | order_cost | tool_list | faults. The last line is
`NAME: key=value ...`.

`faults` takes options (`python -m bench faults --help`) and exits 1 when a check fails.
"""

from __future__ import annotations

import asyncio
import sys

from bench.dca_backtest import main as dca_backtest
from bench.event_bus import main as event_bus
from bench.faults.suite import main as faults
from bench.feed import main as feed
from bench.mcp_load import main as mcp_load
from bench.order_cost import main as order_cost
from bench.roundtrip import main as roundtrip
from bench.state_read import main as state_read
from bench.tool_list import main as tool_list

BENCHES = {"roundtrip": roundtrip, "state_read": state_read, "order_cost": order_cost,
           "tool_list": tool_list, "event_bus": event_bus, "mcp_load": mcp_load,
           "feed": feed, "dca_backtest": dca_backtest}
WITH_OPTIONS = {"faults": faults}


def run() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name in WITH_OPTIONS:
        return asyncio.run(WITH_OPTIONS[name](sys.argv[2:]))
    if len(sys.argv) != 2 or name not in BENCHES:
        print(f"usage: python -m bench {{{'|'.join([*BENCHES, *WITH_OPTIONS])}}}", file=sys.stderr)
        return 2
    asyncio.run(BENCHES[name]())
    return 0


sys.exit(run())
