"""The hypothesis fuzz of every tool, over the same HTTP bridge the orders go through.

The generator lives in tests/fuzz_tools.py (`fuzz_all_tools(client, *, examples, seed) -> report`,
counting answers, tool errors and internal errors); this module runs it against the stack and
reads its report. An internal error is an answer the bridge could not explain (a bare "Error
calling tool", a traceback, an input echoed back at length, no answer), i.e. a bug, not bad
input. The commands the fuzz got acknowledged join the orders' in the lost/stuck checks.
"""

from __future__ import annotations

from typing import Any

from fastmcp import Client

CONCURRENCY = 4  # calls at once: 10,000 cases in minutes, still far from the bridge's limits


def _field(report: Any, name: str, default: Any = None) -> Any:
    return report.get(name, default) if isinstance(report, dict) else getattr(report, name, default)


async def fuzz(url: str, token: str, *, examples: int, seed: int | None) -> dict[str, Any]:
    """{'internal_errors': N (None if the fuzzer is missing), 'acknowledged': [command ids],
    'summary': one line, 'examples': the first internal errors}."""
    try:
        from tests.fuzz_tools import fuzz_all_tools
    except ImportError as e:
        return {"internal_errors": None, "acknowledged": [], "summary": f"tests/fuzz_tools.py: {e}",
                "examples": []}
    report: Any = None
    closing_error = ""
    try:
        async with Client(url, auth=token, timeout=60) as client:
            report = await fuzz_all_tools(client, examples=examples, seed=seed, concurrency=CONCURRENCY)
    except Exception as e:  # the HTTP session failing at close must not throw away the report
        if report is None:
            raise
        closing_error = f" (client session ended with {type(e).__name__}: {str(e)[:120]})"
    counts = {k: _field(report, k) for k in ("calls", "ok", "tool_errors", "internal_errors")}
    acknowledged = list(_field(report, "acknowledged", []))
    return {"internal_errors": counts["internal_errors"], "acknowledged": acknowledged,
            "summary": " ".join(f"{k}={v}" for k, v in counts.items()) + closing_error,
            "examples": [str(x)[:300] for x in _field(report, "examples", [])[:5]]}
