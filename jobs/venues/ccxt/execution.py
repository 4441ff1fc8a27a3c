"""A ccxt venue's execution: orders, cancels, look-ups by client order id, balances, fills.

Every order carries our client order id to the exchange (ccxt `clientOrderId` → Binance
`newClientOrderId`) and is found again by it (`origClientOrderId`), so an unknown outcome is
reconciled by asking, never by sending again. What ccxt raises is sorted by what we know:

- the exchange decided (ccxt `ExchangeError`: `InvalidOrder`, `InsufficientFunds`, `BadSymbol`,
  `BadRequest` such as a NOTIONAL filter, `AuthenticationError`...): a rejected `VenueOrder` with the
  exchange's own words;
- a duplicate client order id (ccxt 4.5.90 raises `InvalidOrder` "Duplicate order sent.", other
  exchanges `DuplicateOrderId`): the order it names is looked up and returned, so the same client
  order id twice is one order;
- nothing was sent (the connection was refused or the name did not resolve, aiohttp's
  `ClientConnectorError` under ccxt's `ExchangeNotAvailable`; a 429/418, ccxt `DDoSProtection`; our
  governor's pause): `VenueUnavailable`;
- anything else after the request may have left (ccxt `RequestTimeout`; `ExchangeNotAvailable` from
  a dropped connection or a 5xx, which Binance documents as "outcome unknown"; any other
  `NetworkError`): `VenueTimeout`, reconciled by client order id, never reported as a rejection.

Binance opens a client order id again once every earlier order under it is filled; so that a
repeat after a fill is still one order, the venue remembers the ids it sent (this process) and
answers a repeat with the order as the exchange holds it. (The order flow asks the venue before
re-sending after a restart, jobs/orders.py, so a repeat across processes does not reach here.)
Binance needs the symbol to find an order: the venue remembers each id's symbol, and otherwise
asks each of its configured symbols in turn.
"""

from __future__ import annotations

import re
import socket
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
from ccxt.base import errors as ccxt_errors

from jobs.venues.base import (
    OrderRequest,
    OrderUpdate,
    UpdateHandler,
    VenueBalance,
    VenueFill,
    VenueOrder,
    VenueTimeout,
    VenueUnavailable,
)
from jobs.venues.ccxt.config import CcxtConfig, build_exchange
from jobs.venues.ccxt.governor import RateGovernor, RateLimited, govern
from jobs.venues.ccxt.instruments import CcxtInstruments
from storage.values import OrderStatus

REMEMBERED_IDS = 10_000  # client order ids this process sent, newest kept
_TIME_IN_FORCE = {"gtc": "GTC", "ioc": "IOC"}
_BINANCE_MSG = re.compile(r'"msg"\s*:\s*"([^"]*)"')
_QUERY = re.compile(r"\?\S*")


def D(value: Any) -> Decimal:
    """ccxt's numbers (floats, or strings) as Decimal, through their shortest text (exact for the
    exchange's own decimal strings, which have far fewer than 15 significant digits)."""
    return Decimal(0) if value is None else Decimal(str(value))


class CcxtVenue:
    """One exchange account through ccxt (async REST; ccxt.pro's websockets for updates and data)."""

    def __init__(self, config: CcxtConfig, exchange: Any = None) -> None:
        self.config = config
        self.name = config.name
        self.exchange = exchange if exchange is not None else build_exchange(config)
        self.governor = RateGovernor(config.name, config.weight_limit, config.slow_down_at, config.max_wait_s)
        govern(self.exchange, self.governor)
        self.instruments = CcxtInstruments(self.exchange, config.symbols)
        self._handlers: list[UpdateHandler] = []
        self._sent: OrderedDict[str, VenueOrder | None] = OrderedDict()  # None: outcome unknown
        self._symbol_of: dict[str, str] = {}  # client order id -> symbol

    # -- updates (the stream and polling live in updates.py) -------------------------------------

    def on_update(self, handler: UpdateHandler) -> None:
        self._handlers.append(handler)

    async def report(self, update: OrderUpdate) -> None:
        for handler in self._handlers:
            await handler(update)

    # -- trading ---------------------------------------------------------------------------------

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        cid = req.client_order_id
        if cid in self._sent:  # a repeat: the order as the exchange now holds it
            earlier = self._sent[cid]
            if earlier is not None and earlier.status == "rejected":
                return earlier
            found = await self.get_order(cid)
            if found is not None:
                return found
        refused = self._unsupported(req)
        if refused is not None:
            return self._remember(cid, req.symbol, _rejected(cid, refused))
        await self.instruments.load()
        type_, price, params = self._order_shape(req)
        amount = float(req.qty) if req.qty is not None else None
        try:
            self._remember(cid, req.symbol, None)
            raw = await self.exchange.create_order(req.symbol, type_, req.side, amount, price, params)
        except Exception as e:
            return await self._submit_failed(req, e)
        return self._remember(cid, req.symbol, await self._venue_order(raw, req.symbol, submitted=True))

    async def cancel_order(self, client_order_id: str) -> VenueOrder | None:
        for symbol in self._symbols_for(client_order_id):
            try:
                await self.exchange.cancel_order("", symbol, {"origClientOrderId": client_order_id})
            except Exception as e:
                if self._is("OrderNotFound", e):  # not on this symbol, or no longer open
                    found = await self._fetch(client_order_id, symbol)
                    if found is not None:
                        return found
                    continue
                raise self._unknown_or_unsent(e) from None
            return await self._fetch(client_order_id, symbol)
        return None

    async def get_order(self, client_order_id: str) -> VenueOrder | None:
        for symbol in self._symbols_for(client_order_id):
            found = await self._fetch(client_order_id, symbol)
            if found is not None:
                return found
        earlier = self._sent.get(client_order_id)
        return earlier if earlier is not None and earlier.status == "rejected" else None

    async def open_orders(self) -> list[VenueOrder]:
        """The account's open orders on the venue's symbols (status and filled quantity; an order's
        fills come with `get_order`)."""
        orders = []
        for symbol in self.config.symbols:
            try:
                raws = await self.exchange.fetch_open_orders(symbol)
            except Exception as e:
                raise self._unknown_or_unsent(e) from None
            for raw in raws:
                self._symbol_of.setdefault(raw.get("clientOrderId") or "", symbol)
                orders.append(await self._venue_order(raw, symbol, with_fills=False))
        return orders

    async def balances(self) -> list[VenueBalance]:
        try:
            raw = await self.exchange.fetch_balance()
        except Exception as e:
            raise self._unknown_or_unsent(e) from None
        totals, used = raw.get("total") or {}, raw.get("used") or {}
        return [VenueBalance(asset, D(total), D(used.get(asset))) for asset, total in sorted(totals.items())
                if total]

    async def close(self) -> None:
        await self.exchange.close()

    # -- order shapes ----------------------------------------------------------------------------

    def _unsupported(self, req: OrderRequest) -> str | None:
        """Why the exchange cannot take this order as asked (None: it can)."""
        ex = self.config.exchange
        if req.type == "trailing_stop":
            return f"{ex} through ccxt takes no trailing stops here: use a stop or stop_limit order"
        if req.time_in_force not in _TIME_IN_FORCE:
            return f"{ex} spot has no time_in_force={req.time_in_force}: use gtc or ioc"
        if req.type in ("stop", "stop_limit"):
            wanted = "STOP_LOSS" if req.type == "stop" else "STOP_LOSS_LIMIT"
            market = (self.exchange.markets or {}).get(req.symbol) or {}
            types = (market.get("info") or {}).get("orderTypes")
            listed = types is None or wanted in types
            if not listed or not self.exchange.has.get("createStopOrder", True):
                return f"{ex} does not take {req.type} orders on {req.symbol} (it lists {types})"
        if req.qty is None and req.type != "market":
            return "a notional (quote amount) is only for market orders; give a quantity"
        return None

    def _order_shape(self, req: OrderRequest) -> tuple[str, float | None, dict[str, Any]]:
        """(ccxt type, price, params) for the request, with our client order id."""
        params: dict[str, Any] = {"clientOrderId": req.client_order_id}
        price = float(req.limit_price) if req.limit_price is not None else None
        if req.type != "market":
            params["timeInForce"] = _TIME_IN_FORCE[req.time_in_force]
        if req.type in ("stop", "stop_limit"):
            params["triggerPrice"] = float(req.stop_price) if req.stop_price is not None else None
        if req.qty is None and req.notional is not None:  # spend (or receive) this much quote
            params["quoteOrderQty"] = float(req.notional)
        type_ = "limit" if req.type in ("limit", "stop_limit") else "market"
        return type_, price, params

    # -- what came back --------------------------------------------------------------------------

    async def _submit_failed(self, req: OrderRequest, e: Exception) -> VenueOrder:
        cid = req.client_order_id
        if self._is("DuplicateOrderId", e) or "Duplicate order" in str(e):
            found = await self.get_order(cid)
            if found is not None:
                return found
            raise VenueTimeout(f"{self.name}: duplicate client order id {cid} not found yet") from None
        if self._is("ExchangeError", e) and not self._is("DDoSProtection", e):
            return self._remember(cid, req.symbol, _rejected(cid, self._reason(e)))
        failure = self._unknown_or_unsent(e)
        if isinstance(failure, VenueUnavailable):
            self._sent.pop(cid, None)  # never sent: a later submit goes out
        raise failure from None

    def _unknown_or_unsent(self, e: Exception) -> Exception:
        """VenueUnavailable when the request certainly did not reach the exchange, else VenueTimeout."""
        if isinstance(e, RateLimited):
            return e
        if self._is("DDoSProtection", e) or self._is("RateLimitExceeded", e):
            return VenueUnavailable(f"{self.name}: rate limited by the exchange, not sent "
                                    f"({self._reason(e)})")
        if self._is("ExchangeNotAvailable", e) and _never_connected(e):
            return VenueUnavailable(f"{self.name}: cannot connect, not sent ({self._reason(e)})")
        if self._is("BaseError", e):
            return VenueTimeout(f"{self.name}: no answer ({type(e).__name__}: {self._reason(e)}); "
                                "the outcome is unknown")
        return e

    async def _fetch(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        try:
            raw = await self.exchange.fetch_order("", symbol, {"origClientOrderId": client_order_id})
        except Exception as e:
            if self._is("OrderNotFound", e):
                return None
            raise self._unknown_or_unsent(e) from None
        self._symbol_of[client_order_id] = symbol
        return await self._venue_order(raw, symbol)

    async def _venue_order(self, raw: dict[str, Any], symbol: str, *, with_fills: bool = True,
                           submitted: bool = False) -> VenueOrder:
        filled = D(raw.get("filled"))
        fills: list[VenueFill] = []
        if with_fills and filled > 0:
            fills = await self._fills(raw, symbol, submitted)
        rejected = raw.get("status") == "rejected"
        return VenueOrder(client_order_id=raw.get("clientOrderId") or "", venue_order_id=str(raw["id"]),
                          status=_status(raw.get("status"), filled), filled_qty=filled, fills=fills,
                          reject_reason="rejected by the exchange" if rejected else None)

    async def _fills(self, raw: dict[str, Any], symbol: str, submitted: bool) -> list[VenueFill]:
        """The order's fills: the exchange's trades for it (one `myTrades` call with the order id),
        the same ids, prices and fees whether asked now or later."""
        try:
            trades = await self.exchange.fetch_my_trades(symbol, None, None, {"orderId": raw["id"]})
        except Exception as e:
            if not submitted:
                raise self._unknown_or_unsent(e) from None
            # the order is placed: its fills as the placing answer gave them (a look-up later
            # reads them from the exchange's trades again)
            trades = [{**t, "timestamp": t.get("timestamp") or raw.get("timestamp")}
                      for t in raw.get("trades") or []]
        market_id = await self.instruments.market_id(symbol)
        return [_fill(t, market_id) for t in trades if str(t.get("order") or raw["id"]) == str(raw["id"])]

    def _remember(self, cid: str, symbol: str, outcome: VenueOrder | None) -> VenueOrder:
        self._sent[cid] = outcome
        self._sent.move_to_end(cid)
        self._symbol_of[cid] = symbol
        while len(self._sent) > REMEMBERED_IDS:
            old, _ = self._sent.popitem(last=False)
            self._symbol_of.pop(old, None)
        return outcome  # type: ignore[return-value]

    def _symbols_for(self, client_order_id: str) -> list[str]:
        known = self._symbol_of.get(client_order_id)
        return [known] if known is not None else list(self.config.symbols)

    def _reason(self, e: Exception) -> str:
        """The exchange's own words (Binance's `msg`), without URLs' query strings or any key."""
        text = str(e)
        found = _BINANCE_MSG.search(text)
        text = found.group(1) if found else _QUERY.sub("", text)
        for secret in (self.config.api_key.get_secret_value(), self.config.secret.get_secret_value()):
            if secret:
                text = text.replace(secret, "***")
        return f"{self.config.exchange}: {text}"[:300]

    @staticmethod
    def _is(name: str, e: BaseException) -> bool:
        return isinstance(e, getattr(ccxt_errors, name))


def _never_connected(e: BaseException) -> bool:
    """Whether ccxt's error came from a connection that was never made (refused, unresolvable):
    only then is a request certainly not sent."""
    cause = e.__cause__
    return isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror)


def _status(ccxt_status: str | None, filled: Decimal) -> OrderStatus:
    if ccxt_status == "closed":
        return "filled"
    if ccxt_status in ("canceled", "expired"):  # an expired market order's rest: cancelled, fills kept
        return "cancelled"
    if ccxt_status == "rejected":
        return "rejected"
    return "partially_filled" if filled > 0 else "open"


def _fill(t: dict[str, Any], market_id: str) -> VenueFill:
    fee = t.get("fee") or {}
    ts = t.get("timestamp")
    when = datetime.fromtimestamp(ts / 1000, UTC) if ts is not None else datetime.now(UTC)
    return VenueFill(fill_id=f"{market_id}-{t['id']}", qty=D(t.get("amount")), price=D(t.get("price")),
                     fee=D(fee.get("cost")), fee_asset=fee.get("currency") or "",
                     liquidity=t.get("takerOrMaker") or "taker", ts=when)


def _rejected(cid: str, reason: str) -> VenueOrder:
    return VenueOrder(cid, None, "rejected", Decimal(0), [], reason)
