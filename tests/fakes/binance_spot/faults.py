"""Faults a test arms on the fake, each for the next matching request(s).

- `delay_next`: the request is carried out (an order is placed) and only then is the answer held
  back for `seconds`: a client with a shorter timeout sees a timeout while the exchange did act, the
  "outcome unknown" case a venue adapter must reconcile by client order id.
- `fail_next`: the answer is the given HTTP status instead of being carried out (429 and 418 with
  Binance's `-1003` body and `Retry-After`; any other status with the code and text given).
Refusing connections is the server's business (see `FakeBinanceSpot.refuse_connections`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypeVar

from tests.fakes.binance_spot import errors
from tests.fakes.binance_spot.errors import BinanceError
from tests.fakes.binance_spot.limits import banned_until, too_much_weight


@dataclass
class _Armed:
    method: str | None
    path: str | None
    remaining: int

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path == path)


@dataclass
class _Delay(_Armed):
    seconds: float = 0.0


@dataclass
class _Failure(_Armed):
    error: BinanceError | None = None


T = TypeVar("T", bound=_Armed)


class Faults:
    def __init__(self) -> None:
        self._delays: list[_Delay] = []
        self._failures: list[_Failure] = []

    def delay_next(
        self, seconds: float, *, method: str | None = None, path: str | None = None, count: int = 1
    ) -> None:
        self._delays.append(_Delay(method, path, count, seconds))

    def fail_next(
        self,
        status: int,
        *,
        method: str | None = None,
        path: str | None = None,
        count: int = 1,
        retry_after_s: int = 1,
        code: int = errors.UNKNOWN_ERROR,
        msg: str = "An unknown error occurred while processing the request.",
    ) -> None:
        if status == 429:
            error = too_much_weight(6000, 60, retry_after_s)
        elif status == 418:
            error = banned_until(int((time.time() + retry_after_s) * 1000), retry_after_s)
        else:
            error = BinanceError(code, msg, status=status)
        self._failures.append(_Failure(method, path, count, error))

    def take_failure(self, method: str, path: str) -> BinanceError | None:
        armed = _take(self._failures, method, path)
        return armed.error if armed else None

    def take_delay(self, method: str, path: str) -> float:
        armed = _take(self._delays, method, path)
        return armed.seconds if armed else 0.0

    def clear(self) -> None:
        self._delays.clear()
        self._failures.clear()


def _take(armed: list[T], method: str, path: str) -> T | None:
    for item in armed:
        if item.matches(method, path):
            item.remaining -= 1
            if item.remaining <= 0:
                armed.remove(item)
            return item
    return None
