"""How a tool's failure reaches the client: a ToolError with a short reason, never a traceback.

Argument errors name each bad parameter; a lost Redis and a state view being rebuilt say so
plainly (retry shortly); anything else unexpected becomes a short "internal error" naming the
tool, with the traceback in the operator's log only (it may carry connection strings).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastmcp.exceptions import FastMCPError, NotFoundError, ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.server.middleware import Middleware, MiddlewareContext
from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.state.reader import ViewRebuilding

log = logging.getLogger("tradingd.mcp")


class _NoTracebackForExpectedStates(logging.Filter):
    """fastmcp logs a traceback for every exception a tool raises. A view being rebuilt or an
    unreachable Redis is a known state that ErrorTranslation answers plainly, so during one each
    call logs a line, not a traceback (the daemon logs the outage itself)."""

    EXPECTED = (ViewRebuilding, RedisConnectionError, RedisTimeoutError)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.EXPECTED):
            record.msg = f"{record.msg}: {type(record.exc_info[1]).__name__}"
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("fastmcp.server.server").addFilter(_NoTracebackForExpectedStates())


SHOWN_CHARS = 40  # an error quotes at most this much of a bad value (then "…")
VIEW_REBUILDING = "the state view is being rebuilt from Postgres; retry in a second or two"


def _prefix(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _shown(value: Any) -> str:
    """A bad value as an error quotes it: a string's first SHOWN_CHARS characters in quotes."""
    return repr(_prefix(value)) if isinstance(value, str) else _prefix(repr(value))


def _describe_arguments(tool: str, err: PydanticValidationError) -> str:
    """One line per bad parameter, naming it: what pydantic found wrong and (a prefix of) the value
    given. Why a prefix: a 10,000-character input echoed back helps no one and floods the log."""
    by_param: dict[str, list[str]] = {}
    for e in err.errors(include_url=False):
        loc = e.get("loc") or ("arguments",)
        param = _prefix(str(loc[0]))
        if e["type"] == "none_required" and by_param.get(param):
            continue
        given = e.get("input")
        shown = "" if e["type"] in ("missing_argument", "missing") else f" (got {_shown(given)})"
        msg = f"{_prefix(e['msg'], 200)}{shown}"
        msgs = by_param.setdefault(param, [])
        if msg not in msgs:
            msgs.append(msg)
    # a union member that only says "should be None" adds nothing when the real problem is also listed
    parts = []
    for param, msgs in list(by_param.items())[:8]:
        useful = [m for m in msgs if not m.startswith("Input should be None")] or msgs
        parts.append(f"{param}: {'; '.join(useful[:3])}")
    return f"invalid arguments for {tool}: " + " | ".join(parts) + ". Fix these parameters and call again."


class ErrorTranslation(Middleware):
    """Every failure of a tool reaches the client as a ToolError with a reason.

    Argument errors name each parameter; a lost Redis and a state view being rebuilt say so
    plainly (retry shortly); anything else unexpected becomes a short "internal error" naming the
    tool, with the traceback logged here, never sent (it may carry connection strings).
    """

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        """Each failure is also logged with its reason (one line, at INFO: a refusal is the tool
        working), so an operator reading the log sees why a call failed, not only that it did."""
        name = _prefix(str(getattr(context.message, "name", "tool")))
        try:
            return await self._translated(name, context, call_next)
        except ToolError as e:
            log.info("tool %s failed: %s", name, _loggable(str(e)))
            raise

    async def _translated(self, name: str, context: MiddlewareContext[Any], call_next: Any) -> Any:
        try:
            return await call_next(context)
        except ArgumentsError as e:
            cause = e.__cause__
            if isinstance(cause, PydanticValidationError):
                raise ToolError(_describe_arguments(name, cause)) from None
            raise ToolError(f"invalid arguments for {name}: {_prefix(str(e), 200)}") from None
        except ToolError as e:
            cause = e.__cause__
            if isinstance(cause, RedisConnectionError | RedisTimeoutError):
                raise ToolError("the state store (Redis) is unreachable; retry in a few seconds, or ask the "
                                "operator to check the daemon") from None
            if isinstance(cause, ViewRebuilding):
                raise ToolError(VIEW_REBUILDING) from None
            if cause is not None and str(e).startswith("Error calling tool"):  # fastmcp masked a crash
                raise _internal(name, cause, logged=True) from None
            raise
        except ViewRebuilding:
            raise ToolError(VIEW_REBUILDING) from None
        except (NotFoundError, FastMCPError):
            raise
        except Exception as e:
            raise _internal(name, e) from None


_SECRETS_IN_TEXT = (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), re.compile(r"(?i)(bearer\s+)\S+"))


def _loggable(reason: str, limit: int = 500) -> str:
    """A tool error as logged: passwords in URLs and bearer tokens masked (our messages carry none,
    but a quoted input might), bounded in length."""
    for pattern in _SECRETS_IN_TEXT:
        reason = pattern.sub(r"\1***@" if "://" in pattern.pattern else r"\1***", reason)
    return _prefix(reason, limit)


def _internal(tool: str, exc: BaseException, *, logged: bool = False) -> ToolError:
    """The short answer for a crash; the traceback goes to the log (once: fastmcp logs the ones it masks)."""
    log.error("internal error in tool %s (%s)", tool, type(exc).__name__,
              exc_info=None if logged else (type(exc), exc, exc.__traceback__))
    return ToolError(f"{tool} failed with an internal error ({type(exc).__name__}), logged for the operator; "
                     f"before retrying a change, check list_orders or list_dca_schedules; call health if it "
                     f"persists")
