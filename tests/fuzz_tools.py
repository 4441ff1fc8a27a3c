"""A fuzzer for every tool an MCP server lists, over any transport (it takes a fastmcp Client).

Why: the bridge promised that bad input gets a clear, short refusal and that nothing it
acknowledges is lost, and a fuzz run found inputs it acknowledged and then could not store
(NUL characters, 1e30), a bare "Error calling tool", and 10,000-character inputs echoed back.
This module makes that run repeatable: the CI test (tests/test_tool_fuzz.py) runs a few hundred
cases in memory, and the fault suite (`python -m bench faults`) runs 10,000+ over HTTP.

Arguments come from each tool's inputSchema as hypothesis strategies (patterns, enums, bounds,
optional fields left out), mixed with hostile values (NUL and control characters, huge strings,
1e30, "1e999", NaN, negatives, wrong types, unicode) and with ids the run has seen (a token a
preview returned, a schedule it created), so place_order, cancel_order and update_dca_schedule
also reach the worker. Every outcome is classified:

  ok            the tool answered
  tool error    a ToolError with a reason: short, no traceback, quoting at most a prefix of input
  internal      anything else: a bare "Error calling tool", a traceback, an error text over
                MAX_ERROR_CHARS or echoing more than ECHO_LIMIT characters of an input, an
                exception that is not a tool error, or no answer within call_timeout_s

Destructive tools are skipped by default (delete_dca_schedule), and the schedules the run
created are paused at the end, so a fuzz run against a live stack does not keep buying.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastmcp import Client
from hypothesis import HealthCheck, Phase, given
from hypothesis import seed as hseed
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from storage.values import FINAL_COMMAND_STATUSES

MAX_ERROR_CHARS = 500
ECHO_LIMIT = 64
DEFAULT_SKIP = frozenset({"delete_dca_schedule"})
KNOWN_SYMBOLS = ("BTC/USDT", "ETH/USDT", "SPY", "btcusdt", "eth-usdt", "DOGE/USDT", "XYZ")
HOSTILE: tuple[Any, ...] = (
    "\x00", "a\x00b", "name\x00", "line\nbreak", "\x1b[31mred", "x" * 10_000, "9" * 5_000,
    "", " ", "1e30", "1e999", "-1e999", "NaN", "nan", "Infinity", "-Infinity", "-1", "0", "-0", "0.004",
    "1e-30", "0." + "0" * 40 + "1", str(2 ** 63), str(2 ** 64), 1e30, -1.0, 0, -0.0, 2 ** 63, 2 ** 64,
    -(2 ** 63),
    1.5, 1e-30, True, False, None, [], {}, [1, 2], {"a": 1}, "💥" * 50, "BTC/USDT\x00", "  BTC/USDT  ",
    "'; DROP TABLE orders; --", "../../etc/passwd", "0 0 30 2 *", "* * * * * *", "0 9 * * mon",
    "pv_" + "A" * 22, "ord_" + "0" * 20, "sch_0000000000000000", "td-" + "f" * 28, "order:pv_x",
)
# A lone surrogate cannot be encoded as UTF-8, so a JSON client cannot send it at all (fastmcp's
# HTTP client fails and closes the session); the in-memory transport passes it through.
IN_MEMORY_ONLY: tuple[Any, ...] = ("\ud800", "a\udfffb")
# parameters whose useful values are ids the run has seen, not random strings
POOLED = {"token": "tokens", "order_id": "order_ids", "schedule_id": "schedule_ids",
          "command_id": "command_ids"}
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")


@dataclass
class InternalError:
    tool: str
    args: str  # a shortened repr of the arguments
    error: str  # the first 300 characters of what came back


@dataclass
class FuzzReport:
    calls: int = 0
    ok: int = 0
    tool_errors: int = 0
    internal_errors: int = 0
    per_tool: dict[str, Counter[str]] = field(default_factory=dict)
    examples: list[InternalError] = field(default_factory=list)  # internal errors, up to max_kept
    acknowledged: list[str] = field(default_factory=list)  # command ids answered succeeded or pending
    schedules_created: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"fuzz: calls={self.calls} ok={self.ok} tool_errors={self.tool_errors} "
                f"internal_errors={self.internal_errors} acknowledged={len(self.acknowledged)}")


# --- strategies from a JSON schema

def _number_strategy(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Numbers as JSON numbers and as decimal strings: tiny, huge, many decimals."""
    decimals = st.decimals(min_value="0.00000001", max_value="1000000", allow_nan=False, allow_infinity=False)
    return st.one_of(
        decimals.map(str),
        decimals.map(lambda d: format(d, "f")),
        st.floats(min_value=1e-9, max_value=1e7, allow_nan=False, allow_infinity=False),
        st.integers(min_value=1, max_value=10 ** 6),
        st.sampled_from(["0.01", "0.1", "1", "100", "60000", "0.00001", "0.004", "5", "25001", "1e30"]),
        st.builds(lambda m, e: f"{m}e{e}", st.integers(1, 10 ** 20), st.integers(-40, 40)),
    )


def _schema_strategy(name: str, prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for values that satisfy (or nearly satisfy) one property's schema."""
    if isinstance(prop.get("type"), list):  # a type list (mcp_bridge/param_schema.py) is an anyOf
        prop = {"anyOf": [{**prop, "type": kind} for kind in prop["type"]]}
    options = prop.get("anyOf")
    if options:
        kinds = {o.get("type") for o in options}
        if "number" in kinds:  # Decimal parameters: number | string (| null)
            number = _number_strategy(prop)
            return st.one_of(number, st.none()) if "null" in kinds else number
        return st.one_of(*[_schema_strategy(name, o) for o in options])
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    if "const" in prop:
        return st.just(prop["const"])
    kind = prop.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo, hi = prop.get("minimum"), prop.get("maximum")
        return st.one_of(st.integers(min_value=lo, max_value=hi),
                         st.integers(min_value=(lo or 0) - 5, max_value=(hi or 10 ** 6) + 5))
    if kind == "number":
        return _number_strategy(prop)
    if kind == "string":
        return _string_strategy(name, prop)
    return st.one_of(st.none(), st.text(max_size=20), st.integers())


def _string_strategy(name: str, prop: dict[str, Any]) -> st.SearchStrategy[str]:
    lo, hi = prop.get("minLength", 0), prop.get("maxLength", 200)
    if name == "symbol":
        return st.one_of(st.sampled_from(KNOWN_SYMBOLS),
                         st.from_regex(r"[A-Za-z]{2,5}/?[A-Za-z]{0,5}", fullmatch=True))
    if name == "cron":
        field_ = st.one_of(st.just("*"), st.integers(0, 59).map(str),
                           st.sampled_from(["*/5", "1-5", "mon", "30", "31"]))
        return st.one_of(st.lists(field_, min_size=5, max_size=5).map(" ".join),
                         st.sampled_from(["0 9 * * mon", "*/15 * * * *", "0 0 30 2 *", "0 0 29 2 *",
                                          "0 0 31 4 *"]))
    pattern = prop.get("pattern")
    if pattern:
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: lo <= len(s) <= hi)
    return st.text(min_size=lo, max_size=min(hi, 60))


def _arguments_strategy(tool: str, schema: dict[str, Any], hostile_rate: float,
                        hostile: tuple[Any, ...] = HOSTILE) -> st.SearchStrategy[dict[str, Any]]:
    """Whole argument dicts. Most cases follow the schema (optional fields sometimes left out; for
    the tools that take an order or a schedule, often a coherent one, so the worker runs it);
    a share `hostile_rate` puts a hostile value in one or two fields, drops a required one or
    adds an unknown one."""
    props: dict[str, dict[str, Any]] = schema.get("properties") or {}
    required = sorted(set(schema.get("required") or ()))
    names = sorted(props)
    percent = max(0, min(100, round(hostile_rate * 100)))

    def presence(name: str) -> st.SearchStrategy[bool]:
        return st.just(True) if name in required else st.integers(0, 3).map(lambda r: r == 0)

    parts = {name: st.tuples(presence(name), _schema_strategy(name, prop)) for name, prop in props.items()}
    valid = st.fixed_dictionaries(parts).map(lambda d: {k: v for k, (keep, v) in d.items() if keep})
    coherent = COHERENT.get(tool)
    if coherent is not None:
        valid = st.one_of(valid, coherent, coherent)

    def spoil(args: dict[str, Any], how: int, data: st.DataObject) -> dict[str, Any]:
        out = dict(args)
        if how == 0 and required:
            out.pop(data.draw(st.sampled_from(required)), None)
        elif how == 1:
            unknown = data.draw(st.sampled_from(["x" * 200, "unexpected", "\x00"]))
            out[unknown] = data.draw(st.sampled_from(hostile))
        elif names:
            for name in data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
                out[name] = data.draw(st.sampled_from(hostile))
        return out

    return st.tuples(valid, st.integers(0, 99), st.integers(0, 9), st.data()).map(
        lambda t: spoil(t[0], t[2], t[3]) if t[1] < percent else t[0])


# Coherent inputs for the tools whose random-but-valid arguments almost never make sense together
# (a market order with exactly one of qty or notional, a schedule with exactly one timing), so
# that enough of them reach the worker and its final states.
_SMALL_QTY = st.decimals(min_value="0.00001", max_value="0.05", places=5).map(str)
_SMALL_NOTIONAL = st.decimals(min_value="5", max_value="300", places=2).map(str)
_PRICE = st.one_of(st.decimals(min_value="1", max_value="90000", places=2).map(str),
                   st.sampled_from(["0.004", "0.01", "59000", "61000", "3000", "500"]))
_SYMBOLS = st.sampled_from(["BTC/USDT", "ETH/USDT", "SPY"])
_SIDE = st.sampled_from(["buy", "sell"])
COHERENT: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "preview_order": st.one_of(
        st.fixed_dictionaries({"symbol": _SYMBOLS, "side": _SIDE, "type": st.just("market"),
                               "qty": _SMALL_QTY}),
        st.fixed_dictionaries({"symbol": _SYMBOLS, "side": st.just("buy"), "type": st.just("market"),
                               "notional": _SMALL_NOTIONAL}),
        st.fixed_dictionaries({"symbol": _SYMBOLS, "side": _SIDE, "type": st.just("limit"), "qty": _SMALL_QTY,
                               "limit_price": _PRICE,
                               "time_in_force": st.sampled_from(["gtc", "day", "ioc"])}),
        st.fixed_dictionaries({"symbol": _SYMBOLS, "side": _SIDE, "type": st.just("stop"), "qty": _SMALL_QTY,
                               "stop_price": _PRICE}),
    ),
    "create_dca_schedule": st.fixed_dictionaries(
        {"symbol": _SYMBOLS, "quote_amount": _SMALL_NOTIONAL},
        optional={"name": st.text(min_size=1, max_size=30), "max_price": _PRICE,
                  "misfire_grace_s": st.integers(0, 7200)},
    ).flatmap(lambda d: st.one_of(
        st.just({**d, "interval_s": 3600}),
        st.sampled_from(["0 9 * * mon", "*/30 * * * *", "0 0 30 2 *", "0 0 1 1 *"])
        .map(lambda c: {**d, "cron": c}))),
    "update_dca_schedule": st.fixed_dictionaries(
        {"schedule_id": st.just("sch_0000000000000000"),
         "action": st.sampled_from(["pause", "resume", "change"])},
        optional={"quote_amount": _SMALL_NOTIONAL, "cron": st.just("0 10 * * *"),
                  "name": st.text(max_size=20)}),
}


def generate_arguments(tool: str, schema: dict[str, Any], n: int, *, seed: int, hostile_rate: float,
                       hostile: tuple[Any, ...] = HOSTILE) -> list[dict[str, Any]]:
    """n argument dicts for one tool, drawn by hypothesis (generation only: no shrinking, no database)."""
    drawn: list[dict[str, Any]] = []

    @hseed(seed)
    @hsettings(max_examples=max(1, n), phases=[Phase.generate], database=None, deadline=None,
               suppress_health_check=list(HealthCheck))
    @given(_arguments_strategy(tool, schema, hostile_rate, hostile))
    def collect(args: dict[str, Any]) -> None:
        drawn.append(args)

    collect()
    while drawn and len(drawn) < n:  # a tool with few distinct inputs (or none): call it again
        drawn.append(drawn[len(drawn) % max(1, len(drawn))])
    return drawn[:n]


# --- classification

def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings_in(k), *_strings_in(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings_in(v)]
    return [str(value)]


def echoes_input(text: str, args: dict[str, Any], limit: int = ECHO_LIMIT) -> bool:
    """Whether `text` repeats more than `limit` consecutive characters of any argument."""
    long_values = [s for s in _strings_in(args) if len(s) > limit]
    if not long_values or len(text) <= limit:
        return False
    windows = {text[i:i + limit + 1] for i in range(len(text) - limit)}
    return any(w in v for v in long_values for w in windows)


def classify_error(text: str, args: dict[str, Any]) -> str | None:
    """None for a clean tool error; otherwise why it counts as an internal error."""
    if text.startswith("Error calling tool") or "internal error" in text:
        return "bare internal error"
    if _TRACEBACK.search(text):
        return "traceback in the answer"
    if len(text) > MAX_ERROR_CHARS:
        return f"error text of {len(text)} characters"
    if echoes_input(text, args):
        return f"echoes more than {ECHO_LIMIT} characters of the input"
    return None


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


# --- the run

class _Seen:
    """Ids the run has been given, to feed back into the tools that take them."""

    def __init__(self) -> None:
        self.tokens: list[tuple[str, dict[str, Any]]] = []
        self.order_ids: list[str] = []
        self.schedule_ids: list[str] = []
        self.command_ids: list[str] = []

    def learn(self, tool: str, args: dict[str, Any], data: Any) -> None:
        if not isinstance(data, dict):
            return
        if tool == "preview_order" and isinstance(data.get("token"), str):
            order = {k: v for k, v in args.items() if k != "token"}
            allowed = bool((data.get("risk") or {}).get("allowed"))
            if allowed:
                self.tokens.append((data["token"], order))
            else:  # kept behind the allowed ones: placing it must be refused, once in a while
                self.tokens.insert(0, (data["token"], order))
            del self.tokens[:-50]
        command = data.get("command")
        if isinstance(command, dict):
            self.command_ids.append(command.get("command_id", ""))
            if command.get("order_id"):
                self.order_ids.append(command["order_id"])
            if command.get("schedule_id"):
                self.schedule_ids.append(command["schedule_id"])
        order = data.get("order")
        if isinstance(order, dict) and isinstance(order.get("order_id"), str):
            self.order_ids.append(order["order_id"])
            if isinstance(order.get("client_order_id"), str):
                self.order_ids.append(order["client_order_id"])
        for o in data.get("orders") or []:
            if isinstance(o, dict) and isinstance(o.get("order_id"), str):
                self.order_ids.append(o["order_id"])
        for s in data.get("schedules") or []:
            if isinstance(s, dict) and isinstance(s.get("schedule_id"), str):
                self.schedule_ids.append(s["schedule_id"])
        for pool in (self.order_ids, self.schedule_ids, self.command_ids):
            del pool[:-200]

    def substitute(self, tool: str, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """Half the time, a seen id in place of a generated one; a place_order half the time
        places a previewed order exactly as previewed (so the worker runs it)."""
        if tool == "place_order" and self.tokens and rng.random() < 0.7:
            # mostly the newest preview (tokens live 30 s), now and then an older or a denied one
            token, order = self.tokens.pop(-1 if rng.random() < 0.8 else rng.randrange(len(self.tokens)))
            return {**order, "token": token}
        out = dict(args)
        for name, pool_name in POOLED.items():
            pool = getattr(self, pool_name)
            if name in out and pool and rng.random() < 0.5:
                choice = rng.choice(pool)
                out[name] = choice[0] if isinstance(choice, tuple) else choice
        return out


def _tool_schema(tool: Any) -> dict[str, Any]:
    schema = getattr(tool, "input_schema", None)
    if schema is None:
        schema = tool.inputSchema
    return dict(schema or {})


async def fuzz_all_tools(client: Client, *, examples: int, seed: int | None = None,
                         skip: frozenset[str] = DEFAULT_SKIP, hostile_rate: float = 0.3,
                         call_timeout_s: float = 60.0, concurrency: int = 1, max_kept: int = 20,
                         pause_created_schedules: bool = True, in_memory: bool = False) -> FuzzReport:
    """Call the server's tools `examples` times in all (spread evenly over the tools, in a
    shuffled order) and classify every answer. `concurrency` > 1 runs that many calls at once;
    `in_memory` adds the values only an in-memory transport can carry (IN_MEMORY_ONLY)."""
    hostile = HOSTILE + IN_MEMORY_ONLY if in_memory else HOSTILE
    seed = random.randrange(2 ** 32) if seed is None else seed
    rng = random.Random(seed)
    tools = [t for t in await client.list_tools() if t.name not in skip]
    per_tool = max(1, math.ceil(examples / max(1, len(tools))))
    plan: list[tuple[str, dict[str, Any]]] = []
    for i, tool in enumerate(tools):
        for args in generate_arguments(tool.name, _tool_schema(tool), per_tool, seed=seed + i,
                                       hostile_rate=hostile_rate, hostile=hostile):
            plan.append((tool.name, args))
    rng.shuffle(plan)
    plan = plan[:examples]

    report = FuzzReport(per_tool={t.name: Counter() for t in tools})
    seen = _Seen()
    lock = asyncio.Semaphore(max(1, concurrency))

    async def one(tool: str, generated: dict[str, Any]) -> None:
        args = seen.substitute(tool, generated, rng)
        async with lock:
            try:
                result = await asyncio.wait_for(client.call_tool(tool, args, raise_on_error=False),
                                                call_timeout_s)
            except TimeoutError:
                _record(report, tool, args, "internal", f"no answer within {call_timeout_s:g} s", max_kept)
                return
            except Exception as e:  # not a tool error: a protocol or transport failure, an unparsable result
                _record(report, tool, args, "internal", f"{type(e).__name__}: {e}", max_kept)
                return
        if result.is_error:
            text = " ".join(getattr(c, "text", "") for c in result.content or [])
            why = classify_error(text, args)
            _record(report, tool, args, "tool_error" if why is None else "internal",
                    text if why is None else f"{why}: {text}", max_kept)
            return
        data = result.structured_content
        _record(report, tool, args, "ok", "", max_kept)
        seen.learn(tool, args, data)
        command = data.get("command") if isinstance(data, dict) else None
        if isinstance(command, dict) and command.get("status") in ("succeeded", "pending"):
            report.acknowledged.append(command["command_id"])
            if tool == "create_dca_schedule" and command.get("schedule_id"):
                report.schedules_created.append(command["schedule_id"])

    if concurrency <= 1:
        for tool, args in plan:
            await one(tool, args)
    else:
        await asyncio.gather(*(one(tool, args) for tool, args in plan))
    if pause_created_schedules:
        for sid in report.schedules_created:
            try:
                pause = {"schedule_id": sid, "action": "pause"}
                await asyncio.wait_for(client.call_tool("update_dca_schedule", pause, raise_on_error=False),
                                       call_timeout_s)
            except Exception:  # best effort: the run's verdict does not depend on it
                pass
    return report


def _record(report: FuzzReport, tool: str, args: dict[str, Any], outcome: str, text: str,
            max_kept: int) -> None:
    report.calls += 1
    report.per_tool.setdefault(tool, Counter())[outcome] += 1
    if outcome == "ok":
        report.ok += 1
    elif outcome == "tool_error":
        report.tool_errors += 1
    else:
        report.internal_errors += 1
        if len(report.examples) < max_kept:
            report.examples.append(InternalError(tool, _short(args), text[:300]))


async def unfinished_commands(client: Client, command_ids: list[str], *, within_s: float,
                              every_s: float = 0.2) -> dict[str, str]:
    """The acknowledged commands not final `within_s` seconds from now: {command_id: last status}."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    waiting = dict.fromkeys(dict.fromkeys(command_ids), "unseen")
    while waiting:
        for cid in list(waiting):
            result = await client.call_tool("get_command_status", {"command_id": cid}, raise_on_error=False)
            data = result.structured_content if not result.is_error else None
            status = data.get("status") if isinstance(data, dict) else None
            if status in FINAL_COMMAND_STATUSES:
                del waiting[cid]
            else:
                waiting[cid] = str(status)
        if not waiting or loop.time() >= deadline:
            break
        await asyncio.sleep(every_s)
    return waiting
