"""Binance's error answer: `{"code": <negative int>, "msg": "..."}` with an HTTP status.

Clients (ccxt among them) map the `code` to their exception types, so the fake raises one of these
wherever Binance would refuse, with Binance's own code and text; the texts below are Binance's
literal protocol strings (ccxt matches some of them byte for byte, e.g. the insufficient-balance one).
"""

from __future__ import annotations

UNKNOWN_ERROR = -1000
TOO_MANY_REQUESTS = -1003
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
INVALID_SYMBOL = -1121
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
FILTER_FAILURE = -1013
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015

MSG_DUPLICATE_ORDER = "Duplicate order sent."
MSG_INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
MSG_WOULD_TAKE = "Order would immediately match and take."
MSG_UNKNOWN_ORDER = "Unknown order sent."
MSG_NO_SUCH_ORDER = "Order does not exist."
MSG_BAD_SIGNATURE = "Signature for this request is not valid."
MSG_REJECTED_KEY = "Invalid API-key, IP, or permissions for action."
MSG_BAD_KEY_FORMAT = "API-key format invalid."


class BinanceError(Exception):
    """A refusal the fake answers as Binance does: `status` is the HTTP status, `code`/`msg` the body."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def filter_failure(filter_type: str) -> BinanceError:
    return BinanceError(FILTER_FAILURE, f"Filter failure: {filter_type}")
