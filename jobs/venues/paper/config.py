"""The paper venue's configuration: a frozen view of its section of the settings.

Why built from `Settings` rather than read on its own: settings live in storage/settings.py
(the one place that reads TRADINGD_* variables and turns bad values into one message per
variable at start-up), and storage cannot import a venue package. The section keeps its
variable names: TRADINGD_PAPER_FEE_BPS, TRADINGD_PAPER_SLIPPAGE_BPS,
TRADINGD_PAPER_STARTING_BALANCES. A venue is built from its frozen config, so nothing changes a
running venue's terms behind its back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from storage.settings import Settings


@dataclass(frozen=True, slots=True)
class PaperConfig:
    fee_bps: Decimal  # of a fill's value, charged in the quote currency
    slippage_bps: Decimal  # a taker's price moves this far from the quote
    starting_balances: Mapping[str, Decimal]  # the account's funding the first time we start
    stale_after_s: float  # no fill from a quote older than this

    @classmethod
    def from_settings(cls, s: Settings) -> PaperConfig:
        return cls(fee_bps=s.paper_fee_bps, slippage_bps=s.paper_slippage_bps,
                   starting_balances=MappingProxyType(dict(s.paper_starting_balances)),
                   stale_after_s=s.quote_stale_after_s)
