"""Binance's request signing, checked the way the exchange checks it.

REST (SIGNED endpoints): the key in header `X-MBX-APIKEY`; the payload is the raw query string
immediately followed by the raw body, each without its `signature` parameter, byte for byte as sent
(never re-sorted or re-encoded); signature = hex HMAC-SHA256(secret, payload), compared case-
insensitively. WebSocket API: the payload is every parameter but `signature`, sorted by name, as
`k=v&...`. Both also need `timestamp` within `recvWindow` (default 5000 ms, at most 60000) of the
server's clock and at most 1000 ms ahead of it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from tests.fakes.binance_spot import errors
from tests.fakes.binance_spot.errors import BinanceError

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000


def hmac_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _without_signature(raw: str) -> tuple[str, str | None]:
    """Drop the `signature=` parameter from a raw urlencoded string, keeping the rest's bytes as sent."""
    kept, signature = [], None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def rest_payload(raw_query: str, raw_body: str) -> tuple[str, str | None]:
    """The signed payload of a REST request and the signature it carries (query's wins over body's)."""
    query, query_sig = _without_signature(raw_query)
    body, body_sig = _without_signature(raw_body)
    return query + body, query_sig or body_sig


def ws_api_payload(params: Mapping[str, object]) -> tuple[str, str | None]:
    signature = params.get("signature")
    payload = "&".join(f"{k}={_ws_value(v)}" for k, v in sorted(params.items()) if k != "signature")
    return payload, None if signature is None else str(signature)


def _ws_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Credentials:
    """The one API key the fake serves, and the checks every signed request goes through."""

    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self.secret = secret

    def check_key(self, api_key: str | None) -> None:
        if not api_key:
            raise BinanceError(errors.BAD_API_KEY_FMT, errors.MSG_BAD_KEY_FORMAT, status=401)
        if not hmac.compare_digest(api_key, self.api_key):
            raise BinanceError(errors.REJECTED_MBX_KEY, errors.MSG_REJECTED_KEY, status=401)

    def check_signed(
        self,
        api_key: str | None,
        payload: str,
        signature: str | None,
        params: Mapping[str, object],
        now_ms: int,
    ) -> None:
        self.check_key(api_key)
        check_timestamp(params, now_ms)
        if not signature:
            raise errors.mandatory("signature")
        expected = hmac_hex(self.secret, payload)
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(errors.INVALID_SIGNATURE, errors.MSG_BAD_SIGNATURE)


def check_timestamp(params: Mapping[str, object], now_ms: int) -> None:
    try:
        timestamp = int(str(params["timestamp"]))
    except (KeyError, ValueError):
        raise errors.mandatory("timestamp") from None
    if timestamp > 10**14:  # microseconds are accepted too
        timestamp //= 1000
    try:
        recv_window = int(str(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS)))
    except ValueError:
        raise errors.mandatory("recvWindow") from None
    if recv_window > MAX_RECV_WINDOW_MS:
        raise BinanceError(
            errors.MANDATORY_PARAM, f"Param 'recvWindow' cannot be greater than {MAX_RECV_WINDOW_MS}."
        )
    if timestamp >= now_ms + 1000:
        raise BinanceError(
            errors.INVALID_TIMESTAMP, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if now_ms - timestamp > recv_window:
        raise BinanceError(
            errors.INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow."
        )
