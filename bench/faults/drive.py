"""Orders from concurrent MCP clients over HTTP, and the record of what the tools acknowledged.

Why the record matters: the promise under test is about what a client was told. A command the
tool answered 'succeeded', or 'pending' with a command_id, was acknowledged and must end final
in Postgres whatever happens next. A refusal that says the command was not accepted (retry) is
not a promise, and a call that got no answer at all is unknown; both are counted apart.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fastmcp import Client
from fastmcp.exceptions import ToolError

CALL_TIMEOUT_S = 30.0
_COMMAND_IN_ERROR = re.compile(r"\(command ([A-Za-z0-9:_\-.]+)\)")


@dataclass
class Ledger:
    """What the clients were told, by command id."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # command_id -> 'succeeded' | 'pending'
    refused: dict[str, str] = field(default_factory=dict)  # command_id -> final refusal the tool reported
    outcomes: Counter[str] = field(default_factory=Counter)  # every call's outcome class, for the report
    sample_errors: dict[str, str] = field(default_factory=dict)  # first message per outcome class
    places_started: int = 0  # place_order calls sent, and answered (or given up on): a fault
    places_ended: int = 0  # window saw a call if one started before its end and ended after its start

    def note(self, kind: str, message: str = "") -> None:
        self.outcomes[kind] += 1
        if message and kind not in self.sample_errors:
            self.sample_errors[kind] = message[:300]


def _order(rng: random.Random, quote: dict[str, Any] | None, symbol: str) -> dict[str, Any]:
    """Mostly market buys, some sells (refused until there is a position) and resting limit buys
    a few ticks under the bid, which the daemon's paper host fills later as the price moves."""
    qty = "0.001" if symbol == "BTC/USDT" else "0.01"
    roll = rng.random()
    if roll < 0.2 and quote is not None:
        price = (Decimal(str(quote["bid"])) * Decimal("0.9995")).quantize(Decimal("0.01"))
        return {"symbol": symbol, "side": "buy", "type": "limit", "qty": qty, "limit_price": str(price)}
    side = "sell" if roll < 0.3 else "buy"
    return {"symbol": symbol, "side": side, "type": "market", "qty": qty}


def http_client(url: str, token: str) -> Callable[[], Client[Any]]:
    """A factory of MCP clients over streamable HTTP with the bearer token."""
    return lambda: Client(url, auth=token, timeout=CALL_TIMEOUT_S)


class Driver:
    """`clients` MCP clients placing preview+place pairs while running; pause() to let checks read
    a quiet system (pause waits for the calls in flight, each bounded by CALL_TIMEOUT_S).
    `connect` makes a client: over HTTP (http_client) or in memory (Client(build_server(...)))."""

    def __init__(self, connect: Callable[[], Client[Any]], *, clients: int = 8, pace_s: float = 0.5,
                 seed: int = 7) -> None:
        self.connect = connect
        self.clients, self.pace_s = clients, pace_s
        self.ledger = Ledger()
        self._rng = random.Random(seed)
        self._go = asyncio.Event()
        self._idle = [asyncio.Event() for _ in range(clients)]
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    def start(self) -> None:
        for i in range(self.clients):
            self._idle[i].set()
            self._tasks.append(asyncio.create_task(self._client(i), name=f"mcp-client-{i}"))
        self._go.set()

    def resume(self) -> None:
        self._go.set()

    async def pause(self) -> None:
        self._go.clear()
        await asyncio.gather(*(e.wait() for e in self._idle))

    async def close(self) -> None:
        self._closing = True
        self._go.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, i: int) -> None:
        rng = random.Random(self._rng.random())
        while not self._closing:
            try:
                async with self.connect() as client:
                    while not self._closing:
                        await self._go.wait()
                        self._idle[i].clear()
                        try:
                            await self._one_order(client, rng)
                        finally:
                            self._idle[i].set()
                        await asyncio.sleep(self.pace_s * (0.5 + rng.random()))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the session broke (bridge or Redis trouble): reconnect
                self.ledger.note("session_lost", f"{type(e).__name__}: {e}")
                self._idle[i].set()
                await asyncio.sleep(0.5)

    async def _call(self, client: Client[Any], tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await asyncio.wait_for(client.call_tool(tool, args), CALL_TIMEOUT_S)
        return result.structured_content or {}

    async def _one_order(self, client: Client[Any], rng: random.Random) -> None:
        symbol = rng.choice(("BTC/USDT", "ETH/USDT"))
        try:
            quote = await self._call(client, "get_quote", {"symbol": symbol})
        except ToolError:
            quote = None
        order = _order(rng, quote, symbol)
        try:
            preview = await self._call(client, "preview_order", order)
        except ToolError as e:
            self.ledger.note("preview_refused", str(e))
            return
        if not preview.get("risk", {}).get("allowed", False):
            self.ledger.note("preview_risk_refused", str(preview.get("risk")))
            return
        self.ledger.places_started += 1
        try:
            placed = await self._call(client, "place_order", {"token": preview["token"], **order})
        except ToolError as e:
            self._refused(str(e))
            return
        except TimeoutError as e:
            self.ledger.note("place_unanswered", f"no answer within {CALL_TIMEOUT_S}s: {e}")
            raise
        finally:
            self.ledger.places_ended += 1
        command = placed.get("command", {})
        status, cid = command.get("status"), command.get("command_id")
        if status in ("succeeded", "pending") and cid:
            self.ledger.acknowledged[cid] = status
            self.ledger.note(f"place_{status}")
        else:
            self.ledger.note("place_unexpected", str(placed))

    async def probe(self, bound_s: float) -> tuple[float | None, str]:
        """Seconds until one market buy succeeds end to end (a fresh quote, a preview, a placed
        and filled order), retrying for up to `bound_s`; (None, the last answer) if none did.
        Nothing lost is not enough: a stack that no longer trades has not recovered."""
        t0 = time.monotonic()
        last = ""
        order = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.001"}
        while time.monotonic() - t0 < bound_s:
            try:
                async with self.connect() as client:
                    preview = await self._call(client, "preview_order", order)
                    if preview.get("risk", {}).get("allowed"):
                        placed = await self._call(client, "place_order", {"token": preview["token"], **order})
                        command = placed.get("command", {})
                        if command.get("status") in ("succeeded", "pending") and command.get("command_id"):
                            self.ledger.acknowledged[command["command_id"]] = command["status"]
                        if command.get("status") == "succeeded":
                            return time.monotonic() - t0, ""
                        last = str(command)[:200]
                    else:
                        last = str(preview.get("risk"))[:200]
            except Exception as e:
                last = f"{type(e).__name__}: {str(e)[:200]}"
            await asyncio.sleep(1.0)
        return None, last

    def _refused(self, message: str) -> None:
        """A final refusal names its command (it ran and was rejected); anything else was not accepted."""
        found = _COMMAND_IN_ERROR.search(message)
        if found and ("rejected" in message or "failed" in message):
            self.ledger.refused[found.group(1)] = message
            self.ledger.note("place_refused_final", message)
        else:
            self.ledger.note("place_not_accepted", message)
