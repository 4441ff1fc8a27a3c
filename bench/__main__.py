"""`python -m bench NAME`: roundtrip | state_read | order_cost. The last line is `NAME: key=value ...`."""

from __future__ import annotations

import asyncio
import sys

from bench.order_cost import main as order_cost
from bench.roundtrip import main as roundtrip
from bench.state_read import main as state_read

BENCHES = {"roundtrip": roundtrip, "state_read": state_read, "order_cost": order_cost}


def run() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in BENCHES:
        print(f"usage: python -m bench {{{'|'.join(BENCHES)}}}", file=sys.stderr)
        return 2
    asyncio.run(BENCHES[sys.argv[1]]())
    return 0


sys.exit(run())
