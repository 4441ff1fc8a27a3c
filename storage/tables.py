"""The ORM models' tables, for Core statements on the hot path.

Why Core there: a place_order runs ~20 statements; through the ORM (identity map, unit of work,
per-call cache keys) each cost ~0.5 ms of worker CPU, through prebuilt Core statements ~0.15 ms.
The models stay the one definition of every table; this module only names their Table objects.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from storage.models import (
    BalanceRow,
    CommandRow,
    FillRow,
    OrderRow,
    PaperFillRow,
    PaperOrderRow,
    PositionRow,
    TradingControlRow,
)

BALANCES = cast(Table, BalanceRow.__table__)
COMMANDS = cast(Table, CommandRow.__table__)
CONTROL = cast(Table, TradingControlRow.__table__)
FILLS = cast(Table, FillRow.__table__)
ORDERS = cast(Table, OrderRow.__table__)
PAPER_FILLS = cast(Table, PaperFillRow.__table__)
PAPER_ORDERS = cast(Table, PaperOrderRow.__table__)
POSITIONS = cast(Table, PositionRow.__table__)
