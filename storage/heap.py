"""Keep Python's cyclic garbage collector off the hot path of a long-running process.

After start-up a process holds a large, permanent heap: imported modules, ORM mappers, pydantic
schemas, compiled statements. Every full (generation 2) collection walks all of it; measured in
the MCP bridge process, one such pass took ~120 ms, landing inside whatever request was running.
`gc.freeze()` moves everything that exists at the end of start-up into a permanent generation
the collector never scans, so later collections only look at objects made since.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Call once, when start-up is done: collect start-up garbage, then freeze what survives."""
    gc.collect()
    gc.freeze()
