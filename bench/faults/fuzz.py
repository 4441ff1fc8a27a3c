"""The hypothesis fuzz of every tool, over the same HTTP bridge the orders go through.

The generator lives in tests/fuzz_tools.py (`fuzz_all_tools(client, *, examples, seed) -> report`,
counting answers, tool errors and internal errors); this module only runs it against the stack
and reads the report, whatever shape (attributes or a mapping) it has. An internal error is an
answer the bridge could not explain ("Error calling tool ..."), i.e. a bug, not bad input.
"""

from __future__ import annotations

from typing import Any

from fastmcp import Client


def _field(report: Any, name: str) -> int | None:
    value = report.get(name) if isinstance(report, dict) else getattr(report, name, None)
    return int(value) if isinstance(value, int | float) else None


async def fuzz(url: str, token: str, *, examples: int, seed: int | None) -> dict[str, Any]:
    """{'internal_errors': N or None if the fuzzer is missing, 'report': its report or why not}."""
    try:
        from tests.fuzz_tools import fuzz_all_tools
    except ImportError as e:
        return {"internal_errors": None, "report": f"tests/fuzz_tools.py not available: {e}"}
    async with Client(url, auth=token, timeout=60) as client:
        report = await fuzz_all_tools(client, examples=examples, seed=seed)
    return {"internal_errors": _field(report, "internal_errors"), "report": report}
